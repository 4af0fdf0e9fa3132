/*
 * ca/trusted_root_cmd.h: `fulcrum trusted-root`: prints a Sigstore trusted_root.json
 * (dev.sigstore.trustroot.v1.TrustedRoot, JSON form) for this instance: its CA chain in
 * certificateAuthorities and its CT log in ctlogs, for clients' verification (cosign
 * --trusted-root, sigstore-js toTrustMaterial, sigstore-go, sigstore-python).
 */
#ifndef FULCRUM_CA_TRUSTED_ROOT_CMD_H
#define FULCRUM_CA_TRUSTED_ROOT_CMD_H

/* argv holds the arguments after "trusted-root". Returns the process exit code. */
int trusted_root_main(int argc, char **argv);

#endif
