package spec

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// check inspects one aspect of a spec and returns the first problem found,
// as a single line naming the offending field.
type check func(v *validation) error

// validation carries what the checks share: the spec and the bundle it
// came from.
type validation struct {
	s      *specs.Spec
	bundle string
}

// checks run in order; Validate stops at the first failure so the CLI can
// print exactly one line, as runc does.
var checks = []check{
	checkVersion,
	checkRoot,
	checkProcess,
	checkUser,
	checkRlimits,
	checkCapabilities,
	checkNamespaces,
	checkUserNamespace,
	checkTimeNamespace,
	checkUTS,
	checkSysctls,
	checkMounts,
	checkRootfsPropagation,
	checkDevices,
	checkHooks,
	checkCgroups,
	checkSecurity,
	checkUnsupported,
}

// warnings are accepted for compatibility with older specs but logged.
var warnings = []check{
	warnRelativeMountDestinations,
	warnUnavailableCapabilities,
}

// Validate checks s, loaded from bundle, before anything is created for the
// container. It returns the first problem found; problems runc tolerates
// for backward compatibility are logged with slog as warnings instead.
func Validate(s *specs.Spec, bundle string) error {
	if s == nil {
		return errors.New("spec must not be nil")
	}
	v := &validation{s: s, bundle: bundle}
	for _, c := range checks {
		if err := c(v); err != nil {
			return err
		}
	}
	for _, w := range warnings {
		if err := w(v); err != nil {
			slog.Warn("invalid configuration", "error", err)
		}
	}
	return nil
}

func (v *validation) linux() *specs.Linux {
	if v.s.Linux == nil {
		return &specs.Linux{}
	}
	return v.s.Linux
}

func checkVersion(v *validation) error {
	ver := v.s.Version
	if ver == "" {
		return errors.New("ociVersion must not be empty")
	}
	major, rest, ok := strings.Cut(ver, ".")
	if !ok || rest == "" {
		return fmt.Errorf("invalid ociVersion %q: want MAJOR.MINOR.PATCH", ver)
	}
	n, err := strconv.ParseUint(major, 10, 32)
	if err != nil {
		return fmt.Errorf("invalid ociVersion %q: want MAJOR.MINOR.PATCH", ver)
	}
	if n != specs.VersionMajor {
		return fmt.Errorf("ociVersion %q is not supported: this runtime supports %d.x (up to %s)",
			ver, specs.VersionMajor, specs.Version)
	}
	return nil
}

func checkRoot(v *validation) error {
	if v.s.Root == nil {
		return errors.New("root must be specified")
	}
	if v.s.Root.Path == "" {
		return errors.New("root.path must not be empty")
	}
	path := v.s.Root.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(v.bundle, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("invalid rootfs: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("invalid rootfs: %s is not a directory", path)
	}
	return nil
}

func checkProcess(v *validation) error {
	p := v.s.Process
	if p == nil {
		return errors.New("process property must not be empty")
	}
	if p.Cwd == "" {
		return errors.New("Cwd property must not be empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return errors.New("Cwd must be an absolute path")
	}
	if len(p.Args) == 0 {
		return errors.New("args must not be empty")
	}
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("process.args[%d] contains a nul byte (\\x00)", i)
		}
	}
	for _, pair := range p.Env {
		name, val, ok := strings.Cut(pair, "=")
		if !ok {
			return errors.New("invalid environment variable: missing '='")
		}
		if name == "" {
			return errors.New("invalid environment variable: name cannot be empty")
		}
		if strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("invalid environment variable %q: name contains nul byte (\\x00)", name)
		}
		if strings.IndexByte(val, 0) >= 0 {
			return fmt.Errorf("invalid environment variable %q: value contains nul byte (\\x00)", name)
		}
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fmt.Errorf("process.oomScoreAdj %d is out of range [-1000, 1000]", *p.OOMScoreAdj)
	}
	return nil
}

// ngroupsMax is the kernel's NGROUPS_MAX: setgroups(2) refuses more.
const ngroupsMax = 65536

func checkUser(v *validation) error {
	u := v.s.Process.User
	// (uid_t)-1 means "leave unchanged" to setresuid(2), so it can never be
	// the identity of a process.
	if u.UID == math.MaxUint32 {
		return fmt.Errorf("process.user.uid %d is not a valid user id", u.UID)
	}
	if u.GID == math.MaxUint32 {
		return fmt.Errorf("process.user.gid %d is not a valid group id", u.GID)
	}
	if len(u.AdditionalGids) > ngroupsMax {
		return fmt.Errorf("process.user.additionalGids has %d groups, the kernel allows %d", len(u.AdditionalGids), ngroupsMax)
	}
	for i, g := range u.AdditionalGids {
		if g == math.MaxUint32 {
			return fmt.Errorf("process.user.additionalGids[%d] %d is not a valid group id", i, g)
		}
	}
	if u.Umask != nil && *u.Umask > 0o777 {
		return fmt.Errorf("process.user.umask %#o is not a valid umask", *u.Umask)
	}
	return nil
}

// rlimitTypes are the resources runc maps to setrlimit(2).
var rlimitTypes = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true,
	"RLIMIT_FSIZE": true, "RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true,
	"RLIMIT_NICE": true, "RLIMIT_NOFILE": true, "RLIMIT_NPROC": true, "RLIMIT_RSS": true,
	"RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true, "RLIMIT_STACK": true,
}

func checkRlimits(v *validation) error {
	seen := make(map[string]bool, len(v.s.Process.Rlimits))
	for i, rl := range v.s.Process.Rlimits {
		if !rlimitTypes[rl.Type] {
			return fmt.Errorf("wrong rlimit value: %s", rl.Type)
		}
		if seen[rl.Type] {
			return fmt.Errorf("process.rlimits[%d]: duplicated rlimit type %s", i, rl.Type)
		}
		seen[rl.Type] = true
		if rl.Soft > rl.Hard {
			return fmt.Errorf("process.rlimits[%d] %s: soft limit %d is greater than hard limit %d", i, rl.Type, rl.Soft, rl.Hard)
		}
	}
	return nil
}

// capabilityByName maps "CAP_CHOWN" style names to capabilities.
var capabilityByName = func() map[string]capability.Cap {
	known := capability.ListKnown()
	m := make(map[string]capability.Cap, len(known))
	for _, c := range known {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}()

type capSet struct {
	field string
	names []string
}

func capSets(c *specs.LinuxCapabilities) []capSet {
	if c == nil {
		return nil
	}
	return []capSet{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	}
}

// checkCapabilities refuses names no kernel defines. runc 1.1 only warns
// about them, but a typo such as "CAP_SYSADMIN" silently dropping a
// capability is worse than a clear error.
func checkCapabilities(v *validation) error {
	for _, set := range capSets(v.s.Process.Capabilities) {
		for _, name := range set.names {
			if _, ok := capabilityByName[name]; !ok {
				return fmt.Errorf("process.capabilities.%s: unknown capability %q", set.field, name)
			}
		}
	}
	return nil
}

// warnUnavailableCapabilities reports capabilities this library knows but
// the running kernel does not; like runc, they are ignored rather than
// refused, so a spec written for a newer kernel still runs.
func warnUnavailableCapabilities(v *validation) error {
	last, err := capability.LastCap()
	if err != nil {
		return nil
	}
	var missing []string
	for _, set := range capSets(v.s.Process.Capabilities) {
		for _, name := range set.names {
			if c := capabilityByName[name]; c > last && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ignoring unknown or unavailable capabilities: %v", missing)
	}
	return nil
}

func checkUTS(v *validation) error {
	_, uts := HasNamespace(v.s, specs.UTSNamespace)
	if v.s.Hostname != "" && !uts {
		return errors.New("unable to set hostname without a private UTS namespace")
	}
	if v.s.Domainname != "" && !uts {
		return errors.New("unable to set domainname without a private UTS namespace")
	}
	return nil
}

// ipcSysctls are the kernel.* sysctls that belong to the IPC namespace.
var ipcSysctls = map[string]bool{
	"kernel.msgmax":          true,
	"kernel.msgmnb":          true,
	"kernel.msgmni":          true,
	"kernel.sem":             true,
	"kernel.shmall":          true,
	"kernel.shmmax":          true,
	"kernel.shmmni":          true,
	"kernel.shm_rmid_forced": true,
}

// sysctlDotted converts the "/"-separated form sysctl(8) also accepts
// ("net/ipv4/conf/eth0.100/rp_filter") to the dotted one, swapping the two
// separators so that dots inside a component survive as "/".
func sysctlDotted(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, name)
}

// checkSysctls allows only sysctls that are namespaced by a namespace the
// container does not share with the host: /proc/sys is not fully
// namespaced, and writing anything else would change the host.
func checkSysctls(v *validation) error {
	sysctls := v.linux().Sysctl
	if len(sysctls) == 0 {
		return nil
	}
	_, ipc := HasNamespace(v.s, specs.IPCNamespace)
	_, uts := HasNamespace(v.s, specs.UTSNamespace)
	_, user := HasNamespace(v.s, specs.UserNamespace)
	netPath, net := HasNamespace(v.s, specs.NetworkNamespace)
	hostNet := !net
	if net && netPath != "" {
		same, err := sameNamespace(netPath, "/proc/self/ns/net")
		if err != nil {
			return fmt.Errorf("invalid netns path: %w", err)
		}
		hostNet = same
	}
	// Sorted so that the same spec always reports the same problem.
	for _, raw := range slices.Sorted(maps.Keys(sysctls)) {
		name := sysctlDotted(raw)
		switch {
		case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
			if !ipc {
				return fmt.Errorf("sysctl %q is not allowed in the hosts ipc namespace", name)
			}
		case strings.HasPrefix(name, "net."):
			if hostNet {
				return fmt.Errorf("sysctl %q not allowed in host network namespace", name)
			}
		case uts && name == "kernel.domainname":
		case uts && name == "kernel.hostname":
			return fmt.Errorf("sysctl %q is not allowed as it conflicts with the OCI %q field", name, "hostname")
		case strings.HasPrefix(name, "user."):
			// Per-user-namespace ucounts; outside a user namespace they
			// would be the host's limits.
			if !user {
				return fmt.Errorf("setting ucounts without a user namespace not allowed: %v", name)
			}
		default:
			return fmt.Errorf("sysctl %q is not in a separate kernel namespace", name)
		}
	}
	return nil
}

// propagationKind groups the propagation options by the state they put a
// mount in; the recursive and non-recursive forms share a kind.
var propagationKind = map[string]string{
	"private": "private", "rprivate": "private",
	"shared": "shared", "rshared": "shared",
	"slave": "slave", "rslave": "slave",
	"unbindable": "unbindable", "runbindable": "unbindable",
}

func checkMounts(v *validation) error {
	for i, m := range v.s.Mounts {
		if strings.IndexByte(m.Source, 0) >= 0 || strings.IndexByte(m.Destination, 0) >= 0 ||
			strings.IndexByte(m.Type, 0) >= 0 {
			return fmt.Errorf("mounts[%d] (%s): mount field contains null byte", i, m.Destination)
		}
		if m.Destination == "" {
			return fmt.Errorf("mounts[%d]: destination must not be empty", i)
		}
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return fmt.Errorf("mounts[%d] (%s): id-mapped mounts are not supported by this build", i, m.Destination)
		}
		var first string
		for _, o := range m.Options {
			if strings.IndexByte(o, 0) >= 0 {
				return fmt.Errorf("mounts[%d] (%s): mount field contains null byte", i, m.Destination)
			}
			if o == "idmap" || o == "ridmap" {
				return fmt.Errorf("mounts[%d] (%s): id-mapped mounts are not supported by this build", i, m.Destination)
			}
			kind, ok := propagationKind[o]
			if !ok {
				continue
			}
			if first == "" {
				first = o
				continue
			}
			// A mount can be a slave that also shares with its own peers
			// ("slave" then "shared"); any other mix leaves only the last
			// option in effect, which is almost certainly a mistake.
			prev := propagationKind[first]
			if kind != prev && !(prev == "slave" && kind == "shared" || prev == "shared" && kind == "slave") {
				return fmt.Errorf("mounts[%d] (%s): conflicting propagation options %q and %q", i, m.Destination, first, o)
			}
		}
	}
	return nil
}

// warnRelativeMountDestinations mirrors runc 1.1, which accepts relative
// destinations from old specs (resolving them against the rootfs) with a
// warning.
func warnRelativeMountDestinations(v *validation) error {
	for _, m := range v.s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mount destination %s is not absolute. Support for non-absolute mount destinations will be removed in a future release", m.Destination)
		}
	}
	return nil
}

func checkRootfsPropagation(v *validation) error {
	switch p := v.linux().RootfsPropagation; p {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		return nil
	default:
		return fmt.Errorf("rootfsPropagation=%v is not supported", p)
	}
}

// Kernel dev_t limits (MKDEV): 12 bits of major, 20 bits of minor.
const (
	maxMajor = 1<<12 - 1
	maxMinor = 1<<20 - 1
)

func checkDevices(v *validation) error {
	for i, d := range v.linux().Devices {
		switch d.Type {
		case "c", "u", "b":
			if d.Major == 0 && d.Minor == 0 {
				return fmt.Errorf("linux.devices[%d] (%s): major and minor numbers are required for type %q", i, d.Path, d.Type)
			}
			if d.Major < 0 || d.Major > maxMajor {
				return fmt.Errorf("linux.devices[%d] (%s): major %d is out of range [0, %d]", i, d.Path, d.Major, maxMajor)
			}
			if d.Minor < 0 || d.Minor > maxMinor {
				return fmt.Errorf("linux.devices[%d] (%s): minor %d is out of range [0, %d]", i, d.Path, d.Minor, maxMinor)
			}
		case "p":
		default:
			return fmt.Errorf("invalid device type %q", d.Type)
		}
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("linux.devices[%d]: path %q is not absolute", i, d.Path)
		}
		if filepath.Clean(d.Path) == "/" || strings.IndexByte(d.Path, 0) >= 0 {
			return fmt.Errorf("linux.devices[%d]: invalid path %q", i, d.Path)
		}
	}
	if r := v.linux().Resources; r != nil {
		for i, d := range r.Devices {
			switch d.Type {
			case "", "a", "b", "c":
			default:
				return fmt.Errorf("invalid cgroup device type %q", d.Type)
			}
			if strings.Trim(d.Access, "rwm") != "" {
				return fmt.Errorf("linux.resources.devices[%d]: invalid access %q, want a combination of r, w and m", i, d.Access)
			}
		}
	}
	return nil
}

func checkHooks(v *validation) error {
	h := v.s.Hooks
	if h == nil {
		return nil
	}
	lists := []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, //nolint:staticcheck // deprecated but still run, as runc does
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
	for _, l := range lists {
		for i, hook := range l.hooks {
			if !filepath.IsAbs(hook.Path) {
				return fmt.Errorf("hooks.%s[%d]: path %q is not absolute", l.name, i, hook.Path)
			}
			if hook.Timeout != nil && *hook.Timeout <= 0 {
				return fmt.Errorf("hooks.%s[%d] (%s): timeout must be greater than zero, got %d", l.name, i, hook.Path, *hook.Timeout)
			}
		}
	}
	return nil
}

func checkCgroups(v *validation) error {
	p := v.linux().CgroupsPath
	if strings.IndexByte(p, 0) >= 0 {
		return errors.New("linux.cgroupsPath contains a nul byte")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return fmt.Errorf("linux.cgroupsPath %q must not contain \"..\"", p)
		}
	}
	return nil
}

// Host probes, replaceable in tests so that both answers can be exercised.
var (
	appArmorEnabled = hostAppArmorEnabled
	selinuxEnabled  = hostSELinuxEnabled
)

// hostAppArmorEnabled answers as runc's apparmor.IsEnabled does.
func hostAppArmorEnabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	buf, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(buf) > 1 && buf[0] == 'Y'
}

// hostSELinuxEnabled reports whether selinuxfs is mounted, which the kernel
// only allows when SELinux is active.
func hostSELinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && st.Type == unix.SELINUX_MAGIC
}

// checkSecurity refuses security settings this build cannot apply: running
// a container without the confinement its spec asks for would be silent
// privilege escalation.
func checkSecurity(v *validation) error {
	l := v.linux()
	if len(l.MaskedPaths) > 0 || len(l.ReadonlyPaths) > 0 {
		if _, ok := HasNamespace(v.s, specs.MountNamespace); !ok {
			return errors.New("unable to restrict sys entries without a private MNT namespace")
		}
	}
	// A seccomp config is compiled (and so checked) by the init with
	// libseccomp: one compiler, one set of error messages.
	if profile := v.s.Process.ApparmorProfile; profile != "" {
		if !appArmorEnabled() {
			return errors.New("apparmor: config provided but apparmor not supported")
		}
		return fmt.Errorf("apparmor: profile %q is set but this build does not support AppArmor", profile)
	}
	if v.s.Process.SelinuxLabel != "" {
		if !selinuxEnabled() {
			return errors.New("selinux label is specified in config, but selinux is disabled or not supported")
		}
		return errors.New("selinux label is specified in config, but this build does not support SELinux")
	}
	// runc applies linux.mountLabel only when SELinux is enabled and
	// ignores it otherwise.
	if l.MountLabel != "" && selinuxEnabled() {
		return errors.New("linux.mountLabel is specified in config, but this build does not support SELinux")
	}
	return nil
}

// checkUnsupported refuses the features Features reports as not compiled in.
func checkUnsupported(v *validation) error {
	l := v.linux()
	if l.IntelRdt != nil {
		return errors.New("intelRdt is specified in config, but Intel RDT is not supported by this build")
	}
	if len(l.NetDevices) > 0 {
		return errors.New("linux.netDevices is specified in config, but network devices are not supported by this build")
	}
	return nil
}
