/*
 * ct/ctlog_cmd.h: `fulcrum ctlog serve`: a standalone RFC 6962 log (ct/ct_log.h) on its own
 * HTTP listener (ca/http_server.h): /ct/v1/<endpoint> and /healthz.
 */
#ifndef FULCRUM_CT_CTLOG_CMD_H
#define FULCRUM_CT_CTLOG_CMD_H

/* argv[0] is the first argument after "ctlog" (e.g. "serve"). Returns the exit code. */
int ctlog_main(int argc, char **argv);

#endif
