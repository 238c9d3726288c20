#!/usr/bin/env bash
# Refresh the third-party browser assets served by the app (never from a CDN: the product must
# work offline). Versions are pinned here; each package's licence file is kept beside its files.
set -euo pipefail

SWAGGER_UI_VERSION=5.35.0
SOCKET_IO_CLIENT_VERSION=4.8.4
CHART_JS_VERSION=4.6.1

here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/app/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch NAME VERSION -> unpacks into $work/NAME/package
    mkdir -p "$work/$1"
    (cd "$work/$1" && npm pack --silent "$1@$2" >/dev/null && tar xzf ./*.tgz)
}

fetch swagger-ui-dist "$SWAGGER_UI_VERSION"
fetch socket.io-client "$SOCKET_IO_CLIENT_VERSION"
fetch chart.js "$CHART_JS_VERSION"

rm -rf "$dest" && mkdir -p "$dest/swagger-ui" "$dest/socket.io" "$dest/chart.js"

src="$work/swagger-ui-dist/package"
cp "$src"/{swagger-ui-bundle.js,swagger-ui-standalone-preset.js,swagger-ui.css,favicon-32x32.png,favicon-16x16.png,LICENSE} "$dest/swagger-ui/"
[ -f "$src/NOTICE" ] && cp "$src/NOTICE" "$dest/swagger-ui/"
echo "swagger-ui-dist@$SWAGGER_UI_VERSION" > "$dest/swagger-ui/VERSION"

src="$work/socket.io-client/package"
cp "$src/dist/socket.io.min.js" "$src/LICENSE" "$dest/socket.io/"
echo "socket.io-client@$SOCKET_IO_CLIENT_VERSION" > "$dest/socket.io/VERSION"

src="$work/chart.js/package"
cp "$src/dist/chart.umd.min.js" "$src/LICENSE.md" "$dest/chart.js/" 2>/dev/null \
    || cp "$src/dist/chart.umd.js" "$src/LICENSE.md" "$dest/chart.js/"
echo "chart.js@$CHART_JS_VERSION" > "$dest/chart.js/VERSION"

echo "vendored into $dest"
