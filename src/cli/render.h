/* cli/render.h — printing results: readable text, or --json (render.c). */
#ifndef RP_CLI_RENDER_H
#define RP_CLI_RENDER_H

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "core/error.h"

/* Write o as one line of compact JSON (the HTTP face's JSON) to f.
 * Returns RP_OK, or the errors of rp_msgpack_to_json / RP_INTERNAL for a
 * write error. */
rp_err rp_cli_print_json(FILE *f, const msgpack_object *o, rp_errbuf *eb);

/* The readable forms, one per result shape (all write to cli->out). */
void rp_cli_render_card(const rp_cli *cli, const msgpack_object *card);
void rp_cli_render_customer(const rp_cli *cli, const msgpack_object *c);
void rp_cli_render_history(const rp_cli *cli, const msgpack_object *res, int64_t now);
void rp_cli_render_issues(const rp_cli *cli, const msgpack_object *res, int64_t now);
void rp_cli_render_lookup(const rp_cli *cli, const msgpack_object *res);
/* Any map as aligned "key: value" lines (nested maps indented). */
void rp_cli_render_kv(const rp_cli *cli, const msgpack_object *map);

#endif
