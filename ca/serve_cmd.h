/*
 * ca/serve_cmd.h: `fulcrum serve`: flags (Fulcio's names where they exist), start-up checks,
 * then the HTTP server until SIGTERM/SIGINT.
 */
#ifndef FULCRUM_CA_SERVE_CMD_H
#define FULCRUM_CA_SERVE_CMD_H

/* argv holds the arguments after "serve". Returns the process exit code. */
int serve_main(int argc, char **argv);

#endif
