/*
 * tests/pkcs11_fault/pkcs11_min.h: the few PKCS#11 v2.40 declarations the fault module needs,
 * written for this project from the layout the OASIS standard fixes (Unix ABI: CK_ULONG is
 * unsigned long, structures packed naturally). Used only when p11-kit's pkcs11.h is not
 * installed (see pkcs11_fault.cmake); the two must describe the same ABI.
 *
 * Only the functions the module (and its checker, fault_check.c) call or intercept carry their
 * real prototypes; every other slot of CK_FUNCTION_LIST is an opaque pointer of the same size that
 * is copied, never called. The layout was checked member by member against p11-kit 0.24's header.
 */
#ifndef FULCRUM_PKCS11_MIN_H
#define FULCRUM_PKCS11_MIN_H

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_USER_TYPE;
typedef CK_ULONG CK_STATE;
typedef CK_ULONG CK_NOTIFICATION;
typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;
typedef unsigned char CK_BYTE;
typedef CK_BYTE CK_BBOOL;
typedef CK_ULONG CK_OBJECT_CLASS;
typedef CK_SLOT_ID *CK_SLOT_ID_PTR;
typedef unsigned char CK_UTF8CHAR;
typedef CK_BYTE *CK_BYTE_PTR;
typedef CK_UTF8CHAR *CK_UTF8CHAR_PTR;
typedef CK_ULONG *CK_ULONG_PTR;
typedef void *CK_VOID_PTR;
typedef CK_SESSION_HANDLE *CK_SESSION_HANDLE_PTR;
typedef CK_OBJECT_HANDLE *CK_OBJECT_HANDLE_PTR;

typedef struct CK_VERSION {
    CK_BYTE major;
    CK_BYTE minor;
} CK_VERSION;

typedef struct CK_MECHANISM {
    CK_MECHANISM_TYPE mechanism;
    void *pParameter;
    CK_ULONG ulParameterLen;
} CK_MECHANISM;
typedef CK_MECHANISM *CK_MECHANISM_PTR;

typedef struct CK_ATTRIBUTE {
    CK_ATTRIBUTE_TYPE type;
    void *pValue;
    CK_ULONG ulValueLen;
} CK_ATTRIBUTE;
typedef CK_ATTRIBUTE *CK_ATTRIBUTE_PTR;

typedef struct CK_SESSION_INFO {
    CK_SLOT_ID slotID;
    CK_STATE state;
    CK_FLAGS flags;
    CK_ULONG ulDeviceError;
} CK_SESSION_INFO;
typedef CK_SESSION_INFO *CK_SESSION_INFO_PTR;

typedef struct CK_TOKEN_INFO {
    CK_UTF8CHAR label[32];
    CK_UTF8CHAR manufacturerID[32];
    CK_UTF8CHAR model[16];
    CK_BYTE serialNumber[16];
    CK_FLAGS flags;
    CK_ULONG ulMaxSessionCount;
    CK_ULONG ulSessionCount;
    CK_ULONG ulMaxRwSessionCount;
    CK_ULONG ulRwSessionCount;
    CK_ULONG ulMaxPinLen;
    CK_ULONG ulMinPinLen;
    CK_ULONG ulTotalPublicMemory;
    CK_ULONG ulFreePublicMemory;
    CK_ULONG ulTotalPrivateMemory;
    CK_ULONG ulFreePrivateMemory;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
    CK_BYTE utcTime[16];
} CK_TOKEN_INFO;
typedef CK_TOKEN_INFO *CK_TOKEN_INFO_PTR;

typedef struct CK_C_INITIALIZE_ARGS {
    CK_RV (*CreateMutex)(void **);
    CK_RV (*DestroyMutex)(void *);
    CK_RV (*LockMutex)(void *);
    CK_RV (*UnlockMutex)(void *);
    CK_FLAGS flags;
    void *pReserved;
} CK_C_INITIALIZE_ARGS;

typedef CK_RV (*CK_NOTIFY)(CK_SESSION_HANDLE, CK_NOTIFICATION, CK_VOID_PTR);

typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_FUNCTION_LIST *CK_FUNCTION_LIST_PTR;
typedef CK_FUNCTION_LIST_PTR *CK_FUNCTION_LIST_PTR_PTR;

/* A slot the module copies but never calls. */
typedef void (*CK_OPAQUE_FN)(void);

struct CK_FUNCTION_LIST {
    CK_VERSION version;
    CK_RV (*C_Initialize)(CK_VOID_PTR);
    CK_RV (*C_Finalize)(CK_VOID_PTR);
    CK_OPAQUE_FN C_GetInfo;
    CK_RV (*C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR);
    CK_RV (*C_GetSlotList)(CK_BBOOL, CK_SLOT_ID_PTR, CK_ULONG_PTR);
    CK_OPAQUE_FN C_GetSlotInfo;
    CK_RV (*C_GetTokenInfo)(CK_SLOT_ID, CK_TOKEN_INFO_PTR);
    CK_OPAQUE_FN C_GetMechanismList;
    CK_OPAQUE_FN C_GetMechanismInfo;
    CK_OPAQUE_FN C_InitToken;
    CK_OPAQUE_FN C_InitPIN;
    CK_OPAQUE_FN C_SetPIN;
    CK_RV (*C_OpenSession)(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR);
    CK_RV (*C_CloseSession)(CK_SESSION_HANDLE);
    CK_RV (*C_CloseAllSessions)(CK_SLOT_ID);
    CK_RV (*C_GetSessionInfo)(CK_SESSION_HANDLE, CK_SESSION_INFO_PTR);
    CK_OPAQUE_FN C_GetOperationState;
    CK_OPAQUE_FN C_SetOperationState;
    CK_RV (*C_Login)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG);
    CK_RV (*C_Logout)(CK_SESSION_HANDLE);
    CK_OPAQUE_FN C_CreateObject;
    CK_OPAQUE_FN C_CopyObject;
    CK_OPAQUE_FN C_DestroyObject;
    CK_OPAQUE_FN C_GetObjectSize;
    CK_OPAQUE_FN C_GetAttributeValue;
    CK_OPAQUE_FN C_SetAttributeValue;
    CK_RV (*C_FindObjectsInit)(CK_SESSION_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG);
    CK_RV (*C_FindObjects)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE_PTR, CK_ULONG, CK_ULONG_PTR);
    CK_RV (*C_FindObjectsFinal)(CK_SESSION_HANDLE);
    CK_OPAQUE_FN C_EncryptInit;
    CK_OPAQUE_FN C_Encrypt;
    CK_OPAQUE_FN C_EncryptUpdate;
    CK_OPAQUE_FN C_EncryptFinal;
    CK_OPAQUE_FN C_DecryptInit;
    CK_OPAQUE_FN C_Decrypt;
    CK_OPAQUE_FN C_DecryptUpdate;
    CK_OPAQUE_FN C_DecryptFinal;
    CK_OPAQUE_FN C_DigestInit;
    CK_OPAQUE_FN C_Digest;
    CK_OPAQUE_FN C_DigestUpdate;
    CK_OPAQUE_FN C_DigestKey;
    CK_OPAQUE_FN C_DigestFinal;
    CK_RV (*C_SignInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
    CK_RV (*C_Sign)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
    CK_RV (*C_SignUpdate)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);
    CK_RV (*C_SignFinal)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR);
    CK_OPAQUE_FN C_SignRecoverInit;
    CK_OPAQUE_FN C_SignRecover;
    CK_RV (*C_VerifyInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
    CK_RV (*C_Verify)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
    CK_OPAQUE_FN C_VerifyUpdate;
    CK_OPAQUE_FN C_VerifyFinal;
    CK_OPAQUE_FN C_VerifyRecoverInit;
    CK_OPAQUE_FN C_VerifyRecover;
    CK_OPAQUE_FN C_DigestEncryptUpdate;
    CK_OPAQUE_FN C_DecryptDigestUpdate;
    CK_OPAQUE_FN C_SignEncryptUpdate;
    CK_OPAQUE_FN C_DecryptVerifyUpdate;
    CK_OPAQUE_FN C_GenerateKey;
    CK_OPAQUE_FN C_GenerateKeyPair;
    CK_OPAQUE_FN C_WrapKey;
    CK_OPAQUE_FN C_UnwrapKey;
    CK_OPAQUE_FN C_DeriveKey;
    CK_OPAQUE_FN C_SeedRandom;
    CK_OPAQUE_FN C_GenerateRandom;
    CK_OPAQUE_FN C_GetFunctionStatus;
    CK_OPAQUE_FN C_CancelFunction;
    CK_OPAQUE_FN C_WaitForSlotEvent;
};

#define CKR_OK 0x00UL
#define CKR_HOST_MEMORY 0x02UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_ARGUMENTS_BAD 0x07UL
#define CKR_DEVICE_ERROR 0x30UL
#define CKR_DEVICE_MEMORY 0x31UL
#define CKR_DEVICE_REMOVED 0x32UL
#define CKR_FUNCTION_FAILED 0x06UL
#define CKR_KEY_HANDLE_INVALID 0x60UL
#define CKR_OBJECT_HANDLE_INVALID 0x82UL
#define CKR_OPERATION_NOT_INITIALIZED 0x91UL
#define CKR_SESSION_CLOSED 0xB0UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_TOKEN_NOT_PRESENT 0xE0UL
#define CKR_USER_ALREADY_LOGGED_IN 0x100UL
#define CKR_USER_NOT_LOGGED_IN 0x101UL
#define CKR_SIGNATURE_INVALID 0xC0UL
#define CKR_BUFFER_TOO_SMALL 0x150UL
#define CKR_CRYPTOKI_NOT_INITIALIZED 0x190UL

#define CKS_RO_PUBLIC_SESSION 0UL
#define CKS_RO_USER_FUNCTIONS 1UL
#define CKS_RW_PUBLIC_SESSION 2UL
#define CKS_RW_USER_FUNCTIONS 3UL

#define CKU_USER 1UL

#define CK_TRUE 1
#define CK_FALSE 0
#define CKF_OS_LOCKING_OK 0x02UL
#define CKF_RW_SESSION 0x02UL
#define CKF_SERIAL_SESSION 0x04UL
#define CKA_CLASS 0x000UL
#define CKA_ID 0x102UL
#define CKO_PUBLIC_KEY 2UL
#define CKO_PRIVATE_KEY 3UL
#define CKM_ECDSA 0x1041UL
#define CKM_SHA256_RSA_PKCS 0x40UL

#endif
