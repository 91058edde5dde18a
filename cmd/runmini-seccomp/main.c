/*
 * runmini-seccomp compiles a seccomp profile with libseccomp for a runmini
 * built without cgo (a cgo start costs every runmini command ~2.3 ms on the
 * development VM; only profiles need libseccomp). runmini's package
 * libcontainer/seccomp checks the profile and writes it on stdin, one call
 * to libseccomp a line, in the order its in-process build makes them:
 *
 *   default <action>
 *   arch <libseccomp architecture name>
 *   rule <action> <syscall name> <n> [<arg> <op> <datum_a> <datum_b>]...
 *
 * (actions are SCMP_ACT_* values, ops enum scmp_compare values, numbers in
 * decimal). The program goes to stdout as struct sock_filter, native byte
 * order; an error to stderr as one line (the caller prefixes "seccomp: "),
 * with exit status 1. Unknown
 * syscall names are skipped, as runc and the in-process build do.
 */
#include <errno.h>
#include <inttypes.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t number(char **cursor, unsigned long line)
{
	char *tok = strtok_r(NULL, " \n", cursor), *end;
	unsigned long long v;

	if (!tok)
		die("runmini-seccomp: line %lu: a number is missing", line);
	errno = 0;
	v = strtoull(tok, &end, 10);
	if (errno || *end)
		die("runmini-seccomp: line %lu: %s is not a number", line, tok);
	return v;
}

int main(void)
{
	char buf[MAX_LINE];
	scmp_filter_ctx ctx = NULL;
	unsigned long line = 0;
	int rc;

	while (fgets(buf, sizeof(buf), stdin)) {
		char *cursor, *word = strtok_r(buf, " \n", &cursor);

		line++;
		if (!word)
			continue;
		if (!strcmp(word, "default")) {
			if (ctx)
				die("runmini-seccomp: line %lu: a second default", line);
			ctx = seccomp_init((uint32_t)number(&cursor, line));
			if (!ctx)
				die("new filter: invalid default action");
			/* The runtime decides about no_new_privs itself. */
			rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
			if (rc < 0)
				die("%s", strerror(-rc));
			continue;
		}
		if (!ctx)
			die("runmini-seccomp: line %lu: %s before default", line, word);
		if (!strcmp(word, "arch")) {
			char *name = strtok_r(NULL, " \n", &cursor);
			uint32_t arch = name ? seccomp_arch_resolve_name(name) : 0;

			if (!arch)
				die("unknown architecture \"%s\"", name ? name : "");
			rc = seccomp_arch_add(ctx, arch);
			if (rc < 0 && rc != -EEXIST)
				die("add architecture %s: %s", name, strerror(-rc));
			continue;
		}
		if (!strcmp(word, "rule")) {
			struct scmp_arg_cmp conds[6];
			uint32_t action = (uint32_t)number(&cursor, line);
			char *name = strtok_r(NULL, " \n", &cursor);
			uint64_t n;
			int nr;

			if (!name)
				die("runmini-seccomp: line %lu: a syscall name is missing", line);
			n = number(&cursor, line);
			if (n > 6)
				die("runmini-seccomp: line %lu: %" PRIu64 " conditions", line, n);
			for (uint64_t i = 0; i < n; i++) {
				conds[i].arg = (unsigned int)number(&cursor, line);
				conds[i].op = (enum scmp_compare)number(&cursor, line);
				conds[i].datum_a = number(&cursor, line);
				conds[i].datum_b = number(&cursor, line);
			}
			nr = seccomp_syscall_resolve_name(name);
			if (nr == __NR_SCMP_ERROR)
				continue;
			rc = seccomp_rule_add_array(ctx, action, nr, (unsigned int)n, n ? conds : NULL);
			if (rc < 0)
				die("rule for %s: %s", name, strerror(-rc));
			continue;
		}
		die("runmini-seccomp: line %lu: unknown word %s", line, word);
	}
	if (ferror(stdin))
		die("runmini-seccomp: read: %s", strerror(errno));
	if (!ctx)
		die("runmini-seccomp: no default action");
	rc = seccomp_export_bpf(ctx, 1);
	if (rc < 0)
		die("export filter: %s", strerror(-rc));
	seccomp_release(ctx);
	return 0;
}
