package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specsgo "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxRef is the name `ctr image import` gives the image of
// BusyboxImage.
const BusyboxRef = "docker.io/runmini/busybox:test"

// annotationImageName is containerd's images.AnnotationImageName: the
// full name an importer gives an image of an OCI layout, whichever
// version; org.opencontainers.image.ref.name alone would be taken as a tag
// below a generated "import-<date>" name.
const annotationImageName = "io.containerd.image.name"

// imageEpoch is every file's mtime in the layer, so that the same busybox
// always makes the same image, down to its digests.
var imageEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	busyboxImageOnce sync.Once
	busyboxImagePath string
	busyboxImageErr  error
)

// BusyboxImage returns an OCI image layout tarball, for `ctr image
// import`, of the busybox root filesystem that Rootfs makes: one gzip
// layer, a config running sh with a PATH, for this machine's architecture,
// named BusyboxRef. It is built once per test binary, without docker or a
// registry, and kept under $RUNMINI_CACHE/images by content, so every run
// with the same busybox reuses one file.
func BusyboxImage(t testing.TB) (tarPath, ref string) {
	t.Helper()
	busyboxImageOnce.Do(func() {
		busyboxImagePath, busyboxImageErr = writeBusyboxImage()
	})
	if busyboxImageErr != nil {
		t.Fatalf("busybox image: %v", busyboxImageErr)
	}
	return busyboxImagePath, BusyboxRef
}

// ImportBusybox imports BusyboxImage into the namespace, unpacked for the
// default (overlayfs) snapshotter so that `ctr run` can use it, and returns
// its name. Plain `ctr image import` does this in every version: 1.x
// imports through the client and 2.x through the transfer service, both
// unpacking the host platform unless given --no-unpack.
func (c *Containerd) ImportBusybox(t testing.TB) string {
	t.Helper()
	path, ref := BusyboxImage(t)
	c.CtrMust(t, "image", "import", path)
	names, err := c.ctrList("image", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, ref) {
		t.Fatalf("ctr image import %s: images are %q, want %s", path, names, ref)
	}
	return ref
}

// WriteBusyboxImage is BusyboxImage for programs that are not tests (the
// demo): it returns the tarball's path.
func WriteBusyboxImage() (string, error) { return writeBusyboxImage() }

func writeBusyboxImage() (string, error) {
	tarball, err := busyboxImageTar()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(tarball)
	dir := filepath.Join(cacheDir(), "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "busybox-"+hex.EncodeToString(sum[:8])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	// Written aside and renamed: another test binary may read it at once.
	f, err := os.CreateTemp(dir, ".busybox-*.tar")
	if err != nil {
		return "", err
	}
	_, werr := f.Write(tarball)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), errors.Join(werr, cerr))
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, nil
}

// busyboxImageTar builds the whole image layout tarball in memory (about
// a megabyte).
func busyboxImageTar() ([]byte, error) {
	rootfs, err := os.MkdirTemp("", "busybox-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(rootfs)
	if err := makeRootfs(rootfs); err != nil {
		return nil, err
	}
	layer, diffID, err := layerTar(rootfs)
	if err != nil {
		return nil, err
	}
	layerDesc := descriptor(ocispec.MediaTypeImageLayerGzip, layer)

	platform := ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	created := imageEpoch
	config, err := json.Marshal(ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	if err != nil {
		return nil, err
	}
	configDesc := descriptor(ocispec.MediaTypeImageConfig, config)

	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specsgo.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifest)
	manifestDesc.Platform = &platform
	manifestDesc.Annotations = map[string]string{
		annotationImageName:       BusyboxRef,
		ocispec.AnnotationRefName: BusyboxRef[strings.LastIndexByte(BusyboxRef, ':')+1:],
	}

	index, err := json.Marshal(ocispec.Index{
		Versioned: specsgo.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return nil, err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: imageEpoch}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{"index.json", index},
		{blobPath(configDesc), config},
		{blobPath(manifestDesc), manifest},
		{blobPath(layerDesc), layer},
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: imageEpoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func descriptor(mediaType string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

func blobPath(d ocispec.Descriptor) string {
	return "blobs/" + d.Digest.Algorithm().String() + "/" + d.Digest.Encoded()
}

// layerTar packs the directory rootfs into a gzip layer and returns it
// with its diff id (the digest of the uncompressed tar). Owners and modes
// (the sticky tmp, 1000's home) are kept; times are imageEpoch.
func layerTar(rootfs string) (layer []byte, diffID digest.Digest, err error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	digester := digest.Canonical.Digester()
	tw := tar.NewWriter(io.MultiWriter(zw, digester.Hash()))
	// WalkDir goes in lexical order: the same tree always makes the same
	// bytes.
	err = filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == rootfs {
			return err
		}
		rel, err := filepath.Rel(rootfs, path)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		var link string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		// Numeric owners only: names would be looked up in the host's
		// passwd, not the image's.
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = imageEpoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("layer: %w", err)
	}
	return gz.Bytes(), digester.Digest(), nil
}
