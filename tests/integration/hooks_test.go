package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// hookScript is a host hook: it saves the state it gets on stdin, where it
// ran (mount namespace, hostname) and its environment, then appends its
// name to the order file. Args: outdir name [exit status] [sleep seconds].
const hookScript = `#!/bin/sh
out=$1; name=$2
cat > "$out/$name.json"
readlink /proc/self/ns/mnt > "$out/$name.mnt"
hostname > "$out/$name.host"
env > "$out/$name.env"
echo "$name" >> "$out/order"
# exec: a timeout kills the sleeping process itself, not a parent that
# would leave it behind.
if [ -n "$4" ]; then exec sleep "$4"; fi
exit "${3:-0}"
`

// hookState is the OCI state a hook reads on stdin.
type hookState struct {
	Version string `json:"ociVersion"`
	ID      string `json:"id"`
	Status  string `json:"status"`
	Pid     int    `json:"pid"`
	Bundle  string `json:"bundle"`
}

// hookEnv is a bundle whose hooks write into out, a host directory that is
// also bind-mounted at /hooks in the container for startContainer, which
// runs there.
type hookEnv struct {
	script, out, bundle string
}

func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	dir := hostDir(t)
	h := &hookEnv{script: filepath.Join(dir, "hook.sh"), out: filepath.Join(dir, "out")}
	if err := os.WriteFile(h.script, []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.out, 0o777); err != nil {
		t.Fatal(err)
	}
	return h
}

// hook returns a host hook named name (file names in out) that exits with
// status and, when sleep is not empty, sleeps that long first.
func (h *hookEnv) hook(name string, status int, sleep string) specs.Hook {
	args := []string{"hook", h.out, name, fmt.Sprint(status)}
	if sleep != "" {
		args = append(args, sleep)
	}
	return specs.Hook{Path: h.script, Args: args, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FEAT_HOOK=" + name}}
}

// containerHook is a startContainer hook: its path resolves inside the
// container, so it is busybox sh writing into /hooks.
func containerHook(status int) specs.Hook {
	script := `cat > /hooks/startContainer.json; readlink /proc/self/ns/mnt > /hooks/startContainer.mnt; ` +
		`hostname > /hooks/startContainer.host; env > /hooks/startContainer.env; echo startContainer >> /hooks/order; exit ` + fmt.Sprint(status)
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin", "FEAT_HOOK=startContainer"}}
}

// withHooks mounts out at /hooks and lets set fill in the hooks.
func (h *hookEnv) withHooks(set func(*specs.Hooks)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "600"}
		s.Hostname = "hooked"
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/hooks", Type: "bind", Source: h.out, Options: []string{"bind"}})
		s.Hooks = &specs.Hooks{}
		set(s.Hooks)
	}
}

// quick makes the container's process exit at once instead of sleeping.
func quick(mutate func(*specs.Spec)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		mutate(s)
		s.Process.Args = []string{"true"}
	}
}

func (h *hookEnv) ran(name string) bool {
	_, err := os.Stat(filepath.Join(h.out, name+".json"))
	return err == nil
}

func (h *hookEnv) order(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.out, "order"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return featLines(string(b))
}

func (h *hookEnv) read(t *testing.T, name, ext string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.out, name+"."+ext))
	if err != nil {
		t.Fatalf("hook %s: %v", name, err)
	}
	return strings.TrimSpace(string(b))
}

func (h *hookEnv) state(t *testing.T, name string) hookState {
	t.Helper()
	var st hookState
	if err := json.Unmarshal([]byte(h.read(t, name, "json")), &st); err != nil {
		t.Fatalf("hook %s got no state JSON on stdin: %v", name, err)
	}
	return st
}

func TestHooks(t *testing.T) {
	t.Parallel()

	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, h.withHooks(func(hs *specs.Hooks) {
			hs.CreateRuntime = []specs.Hook{h.hook("createRuntime", 0, "")}
			hs.CreateContainer = []specs.Hook{h.hook("createContainer", 0, "")}
			hs.Prestart = []specs.Hook{h.hook("prestart", 0, "")}
			hs.StartContainer = []specs.Hook{containerHook(0)}
			hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
			hs.Poststop = []specs.Hook{h.hook("poststop", 0, "")}
		}))
		id, st := featCreate(t, bundle)
		if got := strings.Join(h.order(t), " "); got != "createRuntime createContainer" {
			t.Errorf("hooks run by create: %q, want createRuntime createContainer (prestart only once start is called)", got)
		}
		featMust(t, "start", id)
		if got := strings.Join(h.order(t), " "); got != "createRuntime createContainer prestart startContainer poststart" {
			t.Errorf("hooks run by start: %q", got)
		}
		if s := featGetState(t, id); s.Status != "running" {
			t.Errorf("after start: status %s", s.Status)
		}
		featMust(t, "kill", id, "KILL")
		featWaitStopped(t, id)
		if h.ran("poststop") {
			t.Errorf("poststop ran before delete")
		}
		featMust(t, "delete", id)
		if got := h.order(t); len(got) != 6 || got[5] != "poststop" {
			t.Errorf("hooks after delete: %q, want poststop last", got)
		}

		hostMnt := hostLink(t, "/proc/self/ns/mnt")
		hostName, _ := os.Hostname()
		wantStatus := map[string]string{
			"createRuntime": "creating", "createContainer": "creating", "prestart": "created",
			"startContainer": "created", "poststart": "running", "poststop": "stopped",
		}
		for name, status := range wantStatus {
			s := h.state(t, name)
			if s.ID != id || s.Bundle != bundle || s.Version == "" {
				t.Errorf("%s state: %+v, want id %s, bundle %s", name, s, id, bundle)
			}
			if s.Status != status {
				t.Errorf("%s state: status %q, want %q", name, s.Status, status)
			}
			if name != "poststop" && s.Pid != st.Pid {
				t.Errorf("%s state: pid %d, want the init's %d", name, s.Pid, st.Pid)
			}
			env := h.read(t, name, "env")
			if !strings.Contains(env, "FEAT_HOOK="+name) || strings.Contains(env, "GOMAXPROCS") || strings.Contains(env, "_RUNMINI") {
				t.Errorf("%s environment: %q, want exactly the hook's env", name, env)
			}
			inContainer := name == "createContainer" || name == "startContainer"
			mnt, host := h.read(t, name, "mnt"), h.read(t, name, "host")
			if inContainer {
				if mnt == hostMnt || host != "hooked" {
					t.Errorf("%s ran in mount ns %s with hostname %q, want the container's (not %s, hooked)", name, mnt, host, hostMnt)
				}
			} else if mnt != hostMnt || host != hostName {
				t.Errorf("%s ran in mount ns %s with hostname %q, want the runtime's %s and %q", name, mnt, host, hostMnt, hostName)
			}
		}
		if a, b := h.read(t, "createContainer", "mnt"), h.read(t, "startContainer", "mnt"); a != b {
			t.Errorf("createContainer (%s) and startContainer (%s) ran in different mount namespaces", a, b)
		}
	})

	t.Run("run", func(t *testing.T) {
		t.Parallel()
		// `run` goes through the whole lifecycle in one command.
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, h.withHooks(func(hs *specs.Hooks) {
			hs.Prestart = []specs.Hook{h.hook("prestart", 0, "")}
			hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
			hs.Poststop = []specs.Hook{h.hook("poststop", 0, "")}
		}))
		featRunBundle(t, bundle, "--detach")
		// Replace the sleeping process's exit with a kill and delete.
		ids := featList(t)
		if len(ids) != 1 {
			t.Fatalf("containers: %q", ids)
		}
		featMust(t, "delete", "--force", ids[0])
		if got := strings.Join(h.order(t), " "); got != "prestart poststart poststop" {
			t.Errorf("hooks of run -d then delete -f: %q", got)
		}
	})

	// Without prestart hooks, `run` has the init execute the process as
	// soon as it is created (one round trip less); the hooks that remain
	// keep their order and states, and a failure after the release is
	// still a failed `run` that leaves nothing behind.
	t.Run("run released at create", func(t *testing.T) {
		t.Parallel()
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, quick(h.withHooks(func(hs *specs.Hooks) {
			hs.StartContainer = []specs.Hook{containerHook(0)}
			hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
			hs.Poststop = []specs.Hook{h.hook("poststop", 0, "")}
		})))
		featRunBundle(t, bundle)
		if got := strings.Join(h.order(t), " "); got != "startContainer poststart poststop" {
			t.Errorf("hooks of run: %q", got)
		}
		for name, want := range map[string]string{"startContainer": "created", "poststart": "running", "poststop": "stopped"} {
			if st := h.state(t, name); st.Status != want {
				t.Errorf("%s hook saw status %q, want %q", name, st.Status, want)
			}
		}
	})
	t.Run("run with prestart", func(t *testing.T) {
		t.Parallel()
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, quick(h.withHooks(func(hs *specs.Hooks) {
			hs.Prestart = []specs.Hook{h.hook("prestart", 0, "")}
			hs.StartContainer = []specs.Hook{containerHook(0)}
			hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
		})))
		featRunBundle(t, bundle)
		if got := strings.Join(h.order(t), " "); got != "prestart startContainer poststart" {
			t.Errorf("hooks of run: %q", got)
		}
	})
	t.Run("run: startContainer fails", func(t *testing.T) {
		t.Parallel()
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, h.withHooks(func(hs *specs.Hooks) {
			hs.StartContainer = []specs.Hook{containerHook(3)}
			hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
		}))
		id := testutil.ID(t)
		out, errOut, code := testutil.Run(t, "run", "--bundle", bundle, id)
		if code != 1 {
			t.Fatalf("run: exit status %d, want 1: %s%s", code, out, errOut)
		}
		if want := "error running startContainer hook #0"; !strings.Contains(errOut, want) {
			t.Errorf("run: error %q does not say %q", errOut, want)
		}
		if h.ran("poststart") {
			t.Error("poststart ran")
		}
		if _, _, stCode := testutil.Run(t, "state", id); stCode == 0 {
			t.Error("the failed run left the container behind")
		}
	})

	// A failing hook before the container process runs fails the command
	// and leaves nothing behind (the runtime's cleanup checks state dirs,
	// cgroups, mounts and processes).
	for _, c := range []struct {
		name string
		set  func(h *hookEnv, hs *specs.Hooks)
		// atStart: the failure is reported by start, not create.
		atStart bool
	}{
		{"createRuntime fails", func(h *hookEnv, hs *specs.Hooks) { hs.CreateRuntime = []specs.Hook{h.hook("createRuntime", 3, "")} }, false},
		{"createContainer fails", func(h *hookEnv, hs *specs.Hooks) {
			hs.CreateContainer = []specs.Hook{h.hook("createContainer", 3, "")}
		}, false},
		{"createRuntime times out", func(h *hookEnv, hs *specs.Hooks) {
			hk := h.hook("createRuntime", 0, "60")
			timeout := 1
			hk.Timeout = &timeout
			hs.CreateRuntime = []specs.Hook{hk}
		}, false},
		{"prestart fails", func(h *hookEnv, hs *specs.Hooks) { hs.Prestart = []specs.Hook{h.hook("prestart", 3, "")} }, true},
		{"startContainer fails", func(h *hookEnv, hs *specs.Hooks) { hs.StartContainer = []specs.Hook{containerHook(3)} }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHookEnv(t)
			bundle := testutil.Bundle(t, h.withHooks(func(hs *specs.Hooks) {
				c.set(h, hs)
				// Hooks after the failing one must not run.
				hs.Poststart = []specs.Hook{h.hook("poststart", 0, "")}
			}))
			id := testutil.ID(t)
			out, errOut, code := testutil.Run(t, "create", "--bundle", bundle, id)
			if c.atStart {
				if code != 0 {
					t.Fatalf("create: exit status %d: %s%s", code, out, errOut)
				}
				out, errOut, code = testutil.Run(t, "start", id)
			}
			if code == 0 {
				t.Fatalf("%s: command succeeded: %s", c.name, out)
			}
			if !strings.Contains(errOut, "hook") {
				t.Errorf("%s: error %q does not name the hook", c.name, errOut)
			}
			if h.ran("poststart") {
				t.Errorf("%s: poststart ran", c.name)
			}
			// Not running; a prestart failure goes on to delete it.
			if stOut, _, stCode := testutil.Run(t, "state", id); stCode == 0 && strings.Contains(stOut, `"running"`) {
				t.Errorf("%s: container still running: %s", c.name, stOut)
			}
			if !c.atStart {
				if _, _, stCode := testutil.Run(t, "state", id); stCode == 0 {
					t.Errorf("%s: failed create left the container behind", c.name)
				}
			}
		})
	}

	t.Run("poststart and poststop failures warn", func(t *testing.T) {
		t.Parallel()
		h := newHookEnv(t)
		bundle := testutil.Bundle(t, h.withHooks(func(hs *specs.Hooks) {
			hs.Poststart = []specs.Hook{h.hook("poststart", 3, ""), h.hook("poststart2", 0, "")}
			hs.Poststop = []specs.Hook{h.hook("poststop", 3, ""), h.hook("poststop2", 0, "")}
		}))
		id, _ := featCreate(t, bundle)
		featMust(t, "start", id)
		if s := featGetState(t, id); s.Status != "running" {
			t.Errorf("a failing poststart hook stopped the container: %s", s.Status)
		}
		featMust(t, "delete", "--force", id)
		if _, _, code := testutil.Run(t, "state", id); code == 0 {
			t.Errorf("a failing poststop hook kept the container")
		}
		// The spec: a failing poststart/poststop hook is logged and the
		// remaining hooks still run.
		if got := strings.Join(h.order(t), " "); got != "poststart poststart2 poststop poststop2" {
			t.Errorf("hooks run: %q, want every poststart and poststop hook", got)
		}
	})
}

// featList returns the ids `list` shows.
func featList(t *testing.T) []string {
	t.Helper()
	out := featMust(t, "list", "--format", "json")
	var list []featState
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list printed %q: %v", out, err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids
}

// featWaitStopped waits until the container is reported stopped; the
// test binary's deadline bounds it.
func featWaitStopped(t *testing.T, id string) {
	t.Helper()
	for featGetState(t, id).Status != "stopped" {
		featPause()
	}
}
