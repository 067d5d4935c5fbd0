#!/usr/bin/env bash
# Remove what install.sh installed, and nothing else: the entries of install-manifest.txt
# (menu entry, icon, the `skinapp` link if it still points here, the copied program folder).
# The data (models, logs, job history under ~/.local/share/skinapp) stays; delete it by hand.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
manifest="$here/install-manifest.txt"
quiet=0
[ "${1:-}" != --quiet ] || quiet=1
[ -f "$manifest" ] || { echo "uninstall.sh: $manifest not found: nothing to remove" >&2; exit 1; }

remove_dir=""
while IFS=$'\t' read -r kind path; do
  case "$kind" in
    file) [ ! -f "$path" ] || rm -f "$path" ;;
    link) # only if it is still our link, not something installed over it since
      [ "$(readlink "$path" 2>/dev/null)" != "$here/skinapp" ] || rm -f "$path" ;;
    dir) [ "$path" != "$here" ] || remove_dir=$path ;;
  esac
done < "$manifest"
rm -f "$manifest"
if [ -n "$remove_dir" ]; then rm -rf "$remove_dir"; fi
[ "$quiet" = 1 ] || echo "skinapp uninstalled${remove_dir:+ (removed $remove_dir)}; data in ~/.local/share/skinapp is kept"
