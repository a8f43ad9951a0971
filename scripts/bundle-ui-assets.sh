#!/usr/bin/env sh
# Bundle the web UI's third-party JavaScript into the package, so the installed package works
# offline (no CDN at page time). Run by hand when the pinned version changes; the output is
# checked in under src/featureledger/ui/static/vendor/. Needs npm (the npm registry only).
#
#   scripts/bundle-ui-assets.sh
set -eu

CYTOSCAPE_VERSION="3.35.0"

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/src/featureledger/ui/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "cytoscape@$CYTOSCAPE_VERSION" >/dev/null
tar -xzf "cytoscape-$CYTOSCAPE_VERSION.tgz"
mkdir -p "$out"
cp package/dist/cytoscape.min.js "$out/cytoscape.min.js"
cp package/LICENSE "$out/cytoscape.LICENSE"
echo "bundled cytoscape $CYTOSCAPE_VERSION into $out"
