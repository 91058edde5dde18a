#!/bin/sh
# go:generate helper: generates JSON decoders with easyjson (arguments are
# easyjson's: flags, then the file) and keeps only the decoding half.
#
# The encoders go: encoding/json's encoding costs no start-up on the paths
# that matter, and easyjson's writer imports package net (~0.8 ms of
# package init in every container init). So does the import of easyjson's
# root package, worse (net/http, and with it crypto and TLS): the one
# interface the decoders name instead is package specjson's Unmarshaler.
set -eu
for last; do :; done
out="${last%.go}_easyjson.go"
# Stubs first: the generator compiles the package, which may call methods
# the previous generation did not have.
go run github.com/mailru/easyjson/easyjson@v0.9.2 -no_std_marshalers -stubs "$@"
go run github.com/mailru/easyjson/easyjson@v0.9.2 -no_std_marshalers "$@"
qual=specjson.
[ "$(sed -n 's/^package //p' "$out")" = specjson ] && qual=
awk -v qual="$qual" '
	# an encoder, with the comment line above it
	/^\/\/ MarshalEasyJSON / { next }
	/^func .*(Encode[A-Za-z0-9]*\(out \*jwriter\.Writer|\) MarshalEasyJSON\()/ { skip = 1 }
	skip { if ($0 == "}") skip = 0; next }
	/jwriter "github.com\/mailru\/easyjson\/jwriter"/ { next }
	/easyjson "github.com\/mailru\/easyjson"/ { next }
	/^\t_ \*jwriter\.Writer$/ || /^\t_ easyjson\.Marshaler$/ { next }
	{ gsub(/\(easyjson\.Unmarshaler\)/, "(" qual "Unmarshaler)"); print }
' "$out" >"$out.tmp"
mv "$out.tmp" "$out"
# The generator queues every type its encoders need: drop the decoders that
# nothing calls (repeat: a dropped one may have been the only caller).
while :; do
	dead=
	for f in $(sed -n 's/^func \(easyjson[0-9a-f]*Decode[A-Za-z0-9]*\)(.*/\1/p' "$out"); do
		[ "$(grep -c "$f(" "$out")" -eq 1 ] && dead="$dead $f"
	done
	[ -z "$dead" ] && break
	awk -v dead="$dead" '
		BEGIN { n = split(dead, d, " "); for (i = 1; i <= n; i++) D[d[i]] = 1 }
		/^func easyjson/ { name = $2; sub(/\(.*/, "", name); if (name in D) skip = 1 }
		skip { if ($0 == "}") skip = 0; next }
		{ print }
	' "$out" >"$out.tmp"
	mv "$out.tmp" "$out"
done
go run golang.org/x/tools/cmd/goimports@v0.52.0 -w "$out"
if grep -n 'jwriter\|easyjson\.[A-Z]' "$out" | grep -v '^[0-9]*:\s*//'; then
	echo "easyjson.sh: $out still encodes or names package easyjson" >&2
	exit 1
fi
