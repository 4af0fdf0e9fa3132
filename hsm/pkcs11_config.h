/*
 * hsm/pkcs11_config.h: the crypto11-style JSON file that names the PKCS#11 module and token
 * (Fulcio's --pkcs11-config-path), and where the token's user PIN comes from.
 *
 * The file is what Go's encoding/json decodes into crypto11.Config: one JSON object, field names
 * matched case-insensitively, unknown fields ignored, null leaves a field unset. Read here:
 *   Path (string, required)      the PKCS#11 module (.so) to load
 *   TokenLabel, TokenSerial      select the token by its label / serial number (strings)
 *   SlotNumber (integer)         ... or by the slot ID holding it
 *   Pin (string)                 the user PIN (a PIN file or systemd credential is preferred)
 *   MaxSessions (integer)        upper bound on open sessions (0 = the default)
 *   PoolWaitTimeout (integer)    Go time.Duration in nanoseconds: how long a signature may wait
 *                                for a free session when all are busy (0 = no limit)
 *   LoginNotSupported (bool)     never call C_Login (tokens without a user PIN)
 * Exactly one of TokenLabel, TokenSerial, SlotNumber must be given, with crypto11's messages.
 *
 * The PIN is a secret: it is never logged, never put into a `why` message, and every copy made
 * here is cleansed (OPENSSL_cleanse) before it is freed.
 */
#ifndef FULCRUM_HSM_PKCS11_CONFIG_H
#define FULCRUM_HSM_PKCS11_CONFIG_H

#include <stddef.h>

/* Fulcio's default for --pkcs11-config-path (relative to the working directory). */
#define PKCS11_DEFAULT_CONFIG_PATH "config/crypto11.conf"
/* The systemd credential name read from $CREDENTIALS_DIRECTORY. */
#define PKCS11_PIN_CREDENTIAL "pkcs11-pin"

struct pkcs11_config {
    char *path;          /* module path (owned) */
    char *token_label;   /* NULL when not given (owned) */
    char *token_serial;  /* NULL when not given (owned) */
    unsigned long slot_number;
    int has_slot_number;
    char *pin;           /* NULL when not given (owned; cleansed by pkcs11_config_clear) */
    long max_sessions;   /* 0 = default */
    long long pool_wait_timeout_ns; /* 0 = wait without limit */
    int login_not_supported;
};

/* Parses the JSON text (origin names it in messages, e.g. the file path). On success fills *out
 * (which the caller clears with pkcs11_config_clear) and returns 0; otherwise -1 with a reason. */
int pkcs11_config_parse(const char *text, size_t len, const char *origin,
                        struct pkcs11_config *out, char *why, size_t whylen);

/* Reads and parses the file at path; the file's bytes are cleansed after parsing. */
int pkcs11_config_load(const char *path, struct pkcs11_config *out, char *why, size_t whylen);

/* Frees the fields (cleansing the PIN) and zeroes the struct. */
void pkcs11_config_clear(struct pkcs11_config *c);

/*
 * Where the PIN comes from, first that applies:
 *   1. pin_file (--pkcs11-pin-file), when not NULL/empty: must be readable and not empty;
 *   2. $CREDENTIALS_DIRECTORY/pkcs11-pin (systemd LoadCredential=), when that file exists;
 *   3. the config's Pin.
 * A PIN file holds the PIN; one trailing "\n" or "\r\n" is removed. At most 255 bytes, no NUL.
 * On success *pin is a malloc'd copy (free it with pkcs11_secret_free) and *source a static
 * description of where it came from (for logs), and 0 is returned. Returns 1 (with *pin NULL)
 * when no source has a PIN, -1 with a reason (never the PIN) on error.
 */
int pkcs11_pin_resolve(const struct pkcs11_config *cfg, const char *pin_file, char **pin,
                       const char **source, char *why, size_t whylen);

/* Cleanses and frees a NUL-terminated secret (NULL is fine). */
void pkcs11_secret_free(char *secret);

#endif
