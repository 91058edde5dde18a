package mount

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// options is a spec mount's option list split the way the kernel wants it:
// mount(2) flags, propagation changes (each a separate mount(2) call),
// recursive attributes (one mount_setattr(2) call) and filesystem data.
type options struct {
	flags uintptr
	// perMount is set when an option naming a per-mount flag (ro, rw,
	// nosuid, atime, ...) appears: a bind mount then needs a remount, even
	// for "rw" or "suid", since a bind inherits the source's flags.
	perMount    bool
	propagation []uintptr
	// attr holds the recursive attributes; nil when none were given.
	attr   *unix.MountAttr
	data   []string
	copyUp bool
}

type flagOption struct {
	clear    bool
	flag     uintptr
	perMount bool
}

// flagOptions are runc's and crun's non-recursive options.
var flagOptions = map[string]flagOption{
	"async":         {clear: true, flag: unix.MS_SYNCHRONOUS},
	"atime":         {clear: true, flag: unix.MS_NOATIME, perMount: true},
	"bind":          {flag: unix.MS_BIND},
	"defaults":      {},
	"dev":           {clear: true, flag: unix.MS_NODEV, perMount: true},
	"diratime":      {clear: true, flag: unix.MS_NODIRATIME, perMount: true},
	"dirsync":       {flag: unix.MS_DIRSYNC},
	"exec":          {clear: true, flag: unix.MS_NOEXEC, perMount: true},
	"iversion":      {flag: unix.MS_I_VERSION},
	"lazytime":      {flag: unix.MS_LAZYTIME},
	"loud":          {clear: true, flag: unix.MS_SILENT},
	"mand":          {flag: unix.MS_MANDLOCK},
	"noatime":       {flag: unix.MS_NOATIME, perMount: true},
	"nodev":         {flag: unix.MS_NODEV, perMount: true},
	"nodiratime":    {flag: unix.MS_NODIRATIME, perMount: true},
	"noexec":        {flag: unix.MS_NOEXEC, perMount: true},
	"noiversion":    {clear: true, flag: unix.MS_I_VERSION},
	"nolazytime":    {clear: true, flag: unix.MS_LAZYTIME},
	"nomand":        {clear: true, flag: unix.MS_MANDLOCK},
	"norelatime":    {clear: true, flag: unix.MS_RELATIME, perMount: true},
	"nostrictatime": {clear: true, flag: unix.MS_STRICTATIME, perMount: true},
	"nosuid":        {flag: unix.MS_NOSUID, perMount: true},
	"nosymfollow":   {flag: unix.MS_NOSYMFOLLOW, perMount: true},
	"rbind":         {flag: unix.MS_BIND | unix.MS_REC},
	"relatime":      {flag: unix.MS_RELATIME, perMount: true},
	"remount":       {flag: unix.MS_REMOUNT},
	"ro":            {flag: unix.MS_RDONLY, perMount: true},
	"rw":            {clear: true, flag: unix.MS_RDONLY, perMount: true},
	"silent":        {flag: unix.MS_SILENT},
	"strictatime":   {flag: unix.MS_STRICTATIME, perMount: true},
	"suid":          {clear: true, flag: unix.MS_NOSUID, perMount: true},
	"symfollow":     {clear: true, flag: unix.MS_NOSYMFOLLOW, perMount: true},
	"sync":          {flag: unix.MS_SYNCHRONOUS},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type attrOption struct {
	clear bool
	attr  uint64
	// atime options replace the whole atime field: the kernel refuses to
	// clear only some of its bits.
	atime bool
}

// attrOptions are the recursive ("r"-prefixed) options applied with
// mount_setattr(AT_RECURSIVE). Negating an atime mode (ratime,
// rnorelatime, rnostrictatime) selects relatime, the kernel's default,
// just as leaving out the non-recursive flag does with mount(2).
var attrOptions = map[string]attrOption{
	"rro":            {attr: unix.MOUNT_ATTR_RDONLY},
	"rrw":            {clear: true, attr: unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {attr: unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {clear: true, attr: unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {attr: unix.MOUNT_ATTR_NODEV},
	"rdev":           {clear: true, attr: unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {attr: unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {clear: true, attr: unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {attr: unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {clear: true, attr: unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow":   {attr: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {clear: true, attr: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rrelatime":      {atime: true, attr: unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {atime: true, attr: unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {atime: true, attr: unix.MOUNT_ATTR_STRICTATIME},
	"ratime":         {atime: true, attr: unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {atime: true, attr: unix.MOUNT_ATTR_RELATIME},
	"rnostrictatime": {atime: true, attr: unix.MOUNT_ATTR_RELATIME},
}

// parseOptions splits a spec mount's options. Later options override
// earlier ones, as with mount(8); anything unknown is filesystem data.
func parseOptions(opts []string) (*options, error) {
	o := &options{}
	for _, opt := range opts {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
			} else {
				o.flags |= f.flag
			}
			o.perMount = o.perMount || f.perMount
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if a, ok := attrOptions[opt]; ok {
			if o.attr == nil {
				o.attr = &unix.MountAttr{}
			}
			switch {
			case a.atime:
				o.attr.Attr_clr |= unix.MOUNT_ATTR__ATIME
				o.attr.Attr_set = o.attr.Attr_set&^unix.MOUNT_ATTR__ATIME | a.attr
			case a.clear:
				o.attr.Attr_clr |= a.attr
				o.attr.Attr_set &^= a.attr
			default:
				o.attr.Attr_set |= a.attr
				o.attr.Attr_clr &^= a.attr
			}
			continue
		}
		switch opt {
		case "tmpcopyup":
			o.copyUp = true
			continue
		case "notmpcopyup":
			o.copyUp = false
			continue
		case "idmap", "ridmap":
			return nil, fmt.Errorf("mount option %q: idmapped mounts are not supported", opt)
		case "":
			continue
		}
		if strings.HasPrefix(opt, "idmap=") || strings.HasPrefix(opt, "ridmap=") {
			return nil, fmt.Errorf("mount option %q: idmapped mounts are not supported", opt)
		}
		o.data = append(o.data, opt)
	}
	return o, nil
}

func (o *options) isBind() bool { return o.flags&unix.MS_BIND != 0 }

func (o *options) dataString() string { return strings.Join(o.data, ",") }

// perMountFlags is the part of flags a bind remount can change.
const perMountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME |
	unix.MS_NOSYMFOLLOW

const atimeFlags = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// rootPropagation maps linux.rootfsPropagation to the mount(2) flags given
// to "/" after pivot_root; "" means leave it as it is.
func rootPropagation(p string) (uintptr, error) {
	if p == "" {
		return 0, nil
	}
	f, ok := propagationOptions[p]
	if !ok {
		return 0, fmt.Errorf("invalid rootfsPropagation %q", p)
	}
	return f, nil
}

// preparePropagation is what "/" gets before the rootfs is bound: the
// requested propagation, except that unbindable is applied only after
// pivot_root (an unbindable "/" could not be the source of the rootfs
// bind, which is why runc fails it) and until then is private, which it
// implies.
func preparePropagation(p string) (uintptr, error) {
	f, err := rootPropagation(p)
	if err != nil {
		return 0, err
	}
	switch {
	case f == 0:
		return unix.MS_SLAVE | unix.MS_REC, nil
	case f&unix.MS_UNBINDABLE != 0:
		return unix.MS_PRIVATE | unix.MS_REC, nil
	}
	return f, nil
}

// stNoSymFollow is ST_NOSYMFOLLOW (linux/statfs.h), missing from x/sys.
const stNoSymFollow = 0x2000

// statfsMountFlags converts statfs f_flags to the mount(2) per-mount flags
// (the ST_ and MS_ values differ for some bits, so no plain mask).
func statfsMountFlags(st int64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{stNoSymFollow, unix.MS_NOSYMFOLLOW},
	} {
		if st&m.st != 0 {
			f |= m.ms
		}
	}
	if f&(unix.MS_NOATIME|unix.MS_RELATIME) == 0 {
		f |= unix.MS_STRICTATIME
	}
	return f
}
