#!/usr/bin/env bash
# Build the lakeFS server from its published Go module source, once per version, into
# ~/.cache/curate/lakefs/<version>/lakefs (the tests start it; see tests/support/lakefs.py).
#
# Only the Go module proxy is used: `go mod download` brings the module's source (the same tree as the
# release tag); its generated API code is made as lakeFS's own Makefile does (`make gen-api`: oapi-codegen
# v1.5.6 over api/swagger.yml and api/authorization.yml, itself a Go module); the web UI (webui/dist, built
# with npm by `make gen-ui`) is replaced by a one-page placeholder, since the tests use only the API.
#
# Pinned to v0.113.0: the newest release the Go module proxy serves here (it refuses every v1.x of
# github.com/treeverse/lakefs). Its /api/v1 is the API lakefs-sdk 1.x models; docs/lakefs.md lists what
# curate relies on. Prints the binary's path; `LAKEFS_VERSION=... tools/lakefs_build.sh` builds another;
# LAKEFS_BUILD_CHECK_ONLY=1 only says whether it is built (exit 3 if not).
set -euo pipefail

VERSION="${LAKEFS_VERSION:-v0.113.0}"
OAPI_CODEGEN="github.com/deepmap/oapi-codegen/cmd/oapi-codegen@v1.5.6"  # lakeFS's go:generate lines
CACHE="${CURATE_CACHE:-$HOME/.cache/curate}/lakefs/$VERSION"
BINARY="$CACHE/lakefs"

if [ -x "$BINARY" ] && "$BINARY" --version >/dev/null 2>&1; then
  echo "$BINARY"
  exit 0
fi
if [ -n "${LAKEFS_BUILD_CHECK_ONLY:-}" ]; then
  echo "lakefs_build: lakeFS $VERSION is not built at $BINARY (run: make lakefs-server)" >&2
  exit 3
fi
command -v go >/dev/null || { echo "lakefs_build: needs Go (https://go.dev) to build lakeFS $VERSION" >&2; exit 1; }

started=$(date +%s)
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

module_dir=$(go mod download -json "github.com/treeverse/lakefs@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$module_dir" ] || { echo "lakefs_build: go mod download github.com/treeverse/lakefs@$VERSION failed" >&2; exit 1; }
cp -r "$module_dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"

# make gen-api (pkg/api/apigen/doc.go and pkg/auth/service.go carry these go:generate lines)
(cd pkg/api/apigen && nice go run "$OAPI_CODEGEN" -package apigen -generate "types,client,chi-server,spec" \
  -templates ../tmpl -o lakefs.gen.go ../../../api/swagger.yml)
(cd pkg/auth && nice go run "$OAPI_CODEGEN" -package auth -generate "types,client" \
  -o client.gen.go ../../api/authorization.yml)

# make gen-ui, left out: the server embeds webui/dist and injects snippets at this marker in index.html.
mkdir -p webui/dist
printf '<!doctype html><html><head><title>lakeFS</title><!--Snippets--></head><body>lakeFS %s API server (built by curate without its web UI)</body></html>\n' \
  "$VERSION" >webui/dist/index.html

nice go build -trimpath -ldflags "-X github.com/treeverse/lakefs/pkg/version.Version=$VERSION" \
  -o "$work/lakefs" ./cmd/lakefs
mv "$work/lakefs" "$BINARY"
echo "lakefs_build: built lakeFS $VERSION in $(($(date +%s) - started)) s" >&2
echo "$BINARY"
