package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBusyboxImage reads the image layout back as an importer would: the
// index names the image, every blob matches its digest, the config's diff
// id matches the layer, and the layer holds the busybox tree with owners
// and modes kept. The build is reproducible, which the cache relies on.
func TestBusyboxImage(t *testing.T) {
	requireRoot(t)
	path, ref := BusyboxImage(t)
	if ref != BusyboxRef {
		t.Errorf("ref %q, want %q", ref, BusyboxRef)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := busyboxImageTar()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Errorf("two builds of the image differ")
	}

	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[hdr.Name] = data
	}
	blob := func(d ocispec.Descriptor) []byte {
		t.Helper()
		data, ok := files[blobPath(d)]
		if !ok {
			t.Fatalf("no blob %s", d.Digest)
		}
		if digest.FromBytes(data) != d.Digest || int64(len(data)) != d.Size {
			t.Fatalf("blob %s does not match its descriptor", d.Digest)
		}
		return data
	}
	if !strings.Contains(string(files[ocispec.ImageLayoutFile]), `"imageLayoutVersion":"1.0.0"`) {
		t.Errorf("oci-layout: %s", files[ocispec.ImageLayoutFile])
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v: %s", err, files["index.json"])
	}
	md := index.Manifests[0]
	if md.Annotations[annotationImageName] != BusyboxRef || md.Platform == nil || md.Platform.Architecture != runtime.GOARCH {
		t.Errorf("manifest descriptor %+v", md)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(blob(md), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(blob(manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if strings.Join(config.Config.Cmd, " ") != "sh" || config.OS != "linux" || len(config.RootFS.DiffIDs) != 1 {
		t.Errorf("config %+v", config)
	}

	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(layer) != config.RootFS.DiffIDs[0] {
		t.Errorf("diff id does not match the layer")
	}
	entries := map[string]*tar.Header{}
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = hdr
	}
	if h := entries["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox: %+v", h)
	}
	if h := entries["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh: %+v", h)
	}
	if h := entries["tmp/"]; h == nil || h.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp/: %+v", h)
	}
	if h := entries["home/user/"]; h == nil || h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("home/user/: %+v", h)
	}
}
