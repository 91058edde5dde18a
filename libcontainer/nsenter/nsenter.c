//go:build cgo

// The constructor in this file runs before the Go runtime starts any thread,
// which is the only point where a Go program can still setns(2) into a user
// or mount namespace. The protocol is documented in nsenter.go.

#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <link.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define ENV_PIPE "_RUNMINI_NSPIPE"
#define ENV_SETNS "_RUNMINI_SETNS"
#define ENV_UNSHARE "_RUNMINI_UNSHARE"
#define ENV_CGROUP "_RUNMINI_CGROUP"

// Eight namespace types exist; a few spare entries let a caller repeat one
// without us needing dynamic allocation, anything beyond is a caller bug.
#define MAX_JOINS 16
#define MAX_SETNS_LEN 512
// One tasks file per cgroup v1 hierarchy: fourteen controllers and a few
// named hierarchies at the most.
#define MAX_CGROUPS 32

#define ALL_NS_FLAGS                                                          \
	(CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |         \
	 CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWTIME)

struct nstype {
	const char *name;
	int flag;
};

static const struct nstype nstypes[] = {
	{ "user", CLONE_NEWUSER },   { "ipc", CLONE_NEWIPC },
	{ "uts", CLONE_NEWUTS },     { "net", CLONE_NEWNET },
	{ "pid", CLONE_NEWPID },     { "mnt", CLONE_NEWNS },
	{ "cgroup", CLONE_NEWCGROUP }, { "time", CLONE_NEWTIME },
};

struct join {
	int fd;
	const struct nstype *type;
};

// -1 until the pipe fd has been validated; fail() falls back to stderr.
static int report_fd = -1;

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	char line[640];
	va_list ap;
	int n = snprintf(line, sizeof(line), "error ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	// The reader expects exactly one line, so caller-supplied text
	// (namespace names from the environment) must not break it.
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	strcat(line, "\n");

	if (report_fd >= 0) {
		write_all(report_fd, line, strlen(line));
	} else {
		write_all(STDERR_FILENO, "runmini nsenter: ", 17);
		write_all(STDERR_FILENO, line, strlen(line));
	}
	_exit(1);
}

// parse_int parses a non-negative decimal int ending at *end or at the end
// of the string; it returns -1 when s is not exactly such a number.
static int parse_int(const char *s, char **end)
{
	char *e;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &e, 10);
	if (errno != 0 || v < 0 || v > INT_MAX)
		return -1;
	*end = e;
	return (int)v;
}

static const struct nstype *lookup_type(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(nstypes) / sizeof(nstypes[0]); i++)
		if (strlen(nstypes[i].name) == len &&
		    strncmp(nstypes[i].name, name, len) == 0)
			return &nstypes[i];
	return NULL;
}

// parse_setns parses "<fd>:<type>,<fd>:<type>,..." completely before any
// namespace is touched, so malformed input changes nothing.
static int parse_setns(const char *value, struct join *joins)
{
	const char *p = value;
	int n = 0;

	while (*p) {
		char *end;
		const char *name;
		size_t len;
		int fd;

		if (n == MAX_JOINS)
			fail("%s: more than %d entries", ENV_SETNS, MAX_JOINS);
		fd = parse_int(p, &end);
		if (fd < 0 || *end != ':')
			fail("%s: malformed entry at \"%.32s\"", ENV_SETNS, p);
		if (fd == report_fd)
			fail("%s: fd %d is the report pipe", ENV_SETNS, fd);
		name = end + 1;
		len = strcspn(name, ",");
		joins[n].fd = fd;
		joins[n].type = lookup_type(name, len);
		if (joins[n].type == NULL)
			fail("%s: unknown namespace type \"%.*s\"", ENV_SETNS,
			     (int)(len > 32 ? 32 : len), name);
		n++;
		p = name + len;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				fail("%s: trailing comma", ENV_SETNS);
		}
	}
	return n;
}

// parse_cgroup parses "<fd>,<fd>,..." completely before any is written.
static int parse_cgroup(const char *value, int *fds)
{
	const char *p = value;
	int n = 0;

	while (*p) {
		char *end;
		int fd;

		if (n == MAX_CGROUPS)
			fail("%s: more than %d entries", ENV_CGROUP, MAX_CGROUPS);
		fd = parse_int(p, &end);
		if (fd < 0 || (*end != ',' && *end != '\0'))
			fail("%s: malformed entry at \"%.32s\"", ENV_CGROUP, p);
		if (fd == report_fd)
			fail("%s: fd %d is the report pipe", ENV_CGROUP, fd);
		fds[n++] = fd;
		p = end;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				fail("%s: trailing comma", ENV_CGROUP);
		}
	}
	return n;
}

static int parse_unshare(const char *value)
{
	char *end;
	int flags = parse_int(value, &end);

	if (flags < 0 || *end != '\0')
		fail("%s: malformed flags \"%.32s\"", ENV_UNSHARE, value);
	if (flags & ~ALL_NS_FLAGS)
		fail("%s: flags %#x are not namespace flags", ENV_UNSHARE,
		     flags & ~ALL_NS_FLAGS);
	return flags;
}

static void report(const char *line)
{
	if (write_all(report_fd, line, strlen(line)) < 0)
		_exit(1);
	close(report_fd);
	report_fd = -1;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

// populate_image maps the binary's code and read-only data in one madvise
// each, in the process that goes on into the Go runtime (a fork would not
// copy the mappings): what internal/prefault/segments does from Go, early
// enough that the runtime's own start finds them mapped too. A kernel
// without MADV_POPULATE_READ refuses it and the pages fault in as before.
int runmini_populated; // segments mapped, for the tests

static void populate_image(void)
{
	const ElfW(Phdr) *ph = (const void *)getauxval(AT_PHDR);
	size_t n = getauxval(AT_PHNUM);
	uintptr_t bias = 0, page = (uintptr_t)sysconf(_SC_PAGESIZE);

	if (ph == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (ph[i].p_type == PT_PHDR)
			bias = (uintptr_t)ph - ph[i].p_vaddr;
	for (size_t i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_W))
			continue;
		uintptr_t start = (bias + ph[i].p_vaddr) & ~(page - 1);
		uintptr_t end = (bias + ph[i].p_vaddr + ph[i].p_memsz + page - 1) & ~(page - 1);
		if (madvise((void *)start, end - start, MADV_POPULATE_READ) == 0)
			runmini_populated++;
	}
}

__attribute__((constructor)) static void runmini_nsenter(void)
{
	const char *pipe_env = getenv(ENV_PIPE);
	const char *setns_env, *unshare_env, *cgroup_env;
	char setns_value[MAX_SETNS_LEN];
	struct join joins[MAX_JOINS];
	int cgroups[MAX_CGROUPS];
	int njoins = 0, ncgroups = 0, unshare_flags = 0, joined = 0, fd;
	char *end;

	if (pipe_env == NULL)
		return;

	fd = parse_int(pipe_env, &end);
	if (fd < 0 || *end != '\0')
		fail("%s: malformed fd \"%.32s\"", ENV_PIPE, pipe_env);
	if (fcntl(fd, F_GETFD) < 0)
		fail("%s: fd %d: %s", ENV_PIPE, fd, strerror(errno));
	report_fd = fd;

	// Copy before unsetenv: the values must outlive their environ entries.
	setns_env = getenv(ENV_SETNS);
	setns_value[0] = '\0';
	if (setns_env != NULL) {
		if (strlen(setns_env) >= sizeof(setns_value))
			fail("%s: value too long", ENV_SETNS);
		strcpy(setns_value, setns_env);
	}
	unshare_env = getenv(ENV_UNSHARE);
	if (unshare_env != NULL)
		unshare_flags = parse_unshare(unshare_env);
	cgroup_env = getenv(ENV_CGROUP);
	if (cgroup_env != NULL)
		ncgroups = parse_cgroup(cgroup_env, cgroups);

	// glibc and musl remove entries by shifting the initial environ array
	// in place, which is the array the Go runtime reads its environment
	// from, so the Go side never sees these variables.
	unsetenv(ENV_PIPE);
	unsetenv(ENV_SETNS);
	unsetenv(ENV_UNSHARE);
	unsetenv(ENV_CGROUP);

	njoins = parse_setns(setns_value, joins);
	// The cgroup first, while this process has one thread and is still
	// in the runtime's namespaces: 0 in a v1 tasks file moves the writer
	// alone, without the cgroup-wide lock (and RCU grace period) that a
	// runtime writing this pid to cgroup.procs would take.
	for (int i = 0; i < ncgroups; i++) {
		if (write_all(cgroups[i], "0", 1) < 0)
			fail("join cgroup (fd %d): %s", cgroups[i], strerror(errno));
		close(cgroups[i]);
	}
	for (int i = 0; i < njoins; i++) {
		if (setns(joins[i].fd, joins[i].type->flag) < 0)
			fail("setns %s (fd %d): %s", joins[i].type->name,
			     joins[i].fd, strerror(errno));
		close(joins[i].fd);
		joined |= joins[i].type->flag;
	}

	if (unshare_flags != 0 && unshare(unshare_flags) < 0)
		fail("unshare %#x: %s", unshare_flags, strerror(errno));

	// Pid and time namespace membership only applies to children, so the
	// process that goes on into the Go runtime has to be a new one.
	if (((joined | unshare_flags) & (CLONE_NEWPID | CLONE_NEWTIME)) == 0) {
		report("ok\n");
		populate_image();
		return;
	}

	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(report_fd);
		report_fd = -1;
		populate_image();
		return;
	}

	char line[32];
	snprintf(line, sizeof(line), "pid %d\n", (int)pid);
	if (write_all(report_fd, line, strlen(line)) < 0) {
		// Nobody learns about the child, so it must not outlive us.
		kill(pid, SIGKILL);
		_exit(1);
	}
	_exit(0);
}
