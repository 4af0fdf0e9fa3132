/*
 * ca/createca_cmd.h: `fulcrum createca`: makes a CA inside a PKCS#11 token, as Fulcio's
 * `fulcio createca`, for `fulcrum serve --ca pkcs11ca`.
 *
 * Flags (Fulcio's where it has them): --pkcs11-config-path (default config/crypto11.conf),
 * --pkcs11-pin-file, --hsm-caroot-id (required: CKA_ID of the root certificate, the flag's
 * bytes), --hsm-key-label (default PKCS11CA), --org (default "Fulcio Root CA"), --country,
 * --province, --locality, --street-address, --postal-code, --out; and --key-type
 * p256|p384|rsa3072|rsa4096 (default p256), --common-name (default: the --org value),
 * --intermediate with --intermediate-id (required then), --intermediate-key-label (default
 * "<hsm-key-label>-intermediate") and --intermediate-common-name (default "<common-name>
 * Intermediate").
 *
 * What it does:
 *  1. refuses when a certificate with the root's (or the intermediate's) CKA_ID already exists
 *     (as Fulcio);
 *  2. uses the private key labelled --hsm-key-label when the token has exactly one (Fulcio's
 *     createca only ever uses an existing key), otherwise generates a key pair of --key-type in
 *     the token (C_GenerateKeyPair: private, sensitive, never extractable, sign-only; both halves
 *     labelled --hsm-key-label with CKA_ID = the root's CKA_ID);
 *  3. builds the self-signed root of fulcio-compat.md §4.7 (subject C, ST, L, street, postal
 *     code, O, CN; random positive 159-bit serial; 10 years; keyUsage certSign+cRLSign critical;
 *     basicConstraints CA:TRUE pathlen 1 critical; SKID) and signs it THROUGH the token;
 *  4. with --intermediate, does the same for an intermediate whose key is also in the token
 *     (labelled --intermediate-key-label, CKA_ID --intermediate-id): keyUsage certSign+cRLSign
 *     critical, EKU codeSigning, CA:TRUE pathlen 0 critical, SKID, AKID = the root's SKID, the
 *     root's validity; signed by the root key in the token;
 *  5. checks the result as `serve` will (chain, CA, EKU, key policy), stores each certificate in
 *     the token (CKA_ID as above, CKA_LABEL = its key's label), prints the PEM on stdout and
 *     writes it to --out: the root alone, or the chain (intermediate first, root last) with
 *     --intermediate. Serve the intermediate with --hsm-caroot-id <intermediate-id>
 *     --hsm-key-label <intermediate-key-label> --hsm-chain-path <that file>.
 */
#ifndef FULCRUM_CA_CREATECA_CMD_H
#define FULCRUM_CA_CREATECA_CMD_H

/* argv holds the arguments after "createca". Returns the process exit code. */
int createca_main(int argc, char **argv);

#endif
