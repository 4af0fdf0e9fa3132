/*
 * ca/credentials.h: systemd credentials (LoadCredential=, SetCredential=, LoadCredentialEncrypted=
 * in a unit): the service manager puts each one in a file $CREDENTIALS_DIRECTORY/<name>, readable
 * only by the service's user, on a non-swappable file system, and gone when the service stops.
 * Secrets read this way never appear in argv (ps), the environment or the unit file.
 *
 * Used by `fulcrum serve` for the fileca key's password (credential "fileca-key-passwd"); the
 * PKCS#11 PIN ("pkcs11-pin") is read by hsm/pkcs11_config.h.
 */
#ifndef FULCRUM_CA_CREDENTIALS_H
#define FULCRUM_CA_CREDENTIALS_H

#include <stddef.h>

/* The credential holding the password of --fileca-key. */
#define FILECA_KEY_PASSWD_CREDENTIAL "fileca-key-passwd"

/* Largest credential credential_read() accepts by default (a password, a PIN). */
#define CREDENTIAL_MAX_BYTES 4096

/*
 * Reads the credential `name` (a plain file name: no '/', not "." or "..") from
 * $CREDENTIALS_DIRECTORY.
 *  - returns 0 (and *value NULL) when $CREDENTIALS_DIRECTORY is unset or empty, or holds no file
 *    of that name: the caller falls back to its other sources;
 *  - returns 1 with *value a malloc'd NUL-terminated copy of the file's bytes, one trailing "\n"
 *    or "\r\n" removed (so `echo secret > file` works); the value may be "" (an empty file);
 *  - returns -1 with a reason in `why` when the name is invalid, the entry is not a regular file,
 *    cannot be read, holds a NUL byte, or is larger than max_bytes (0 = CREDENTIAL_MAX_BYTES).
 * `why` names the credential and its path, never its contents. Free *value with
 * credential_free(). Thread-safe (reads the environment).
 */
int credential_read(const char *name, size_t max_bytes, char **value, char *why, size_t whylen);

/* Cleanses (OPENSSL_cleanse) and frees a value from credential_read(); NULL is fine. */
void credential_free(char *value);

#endif
