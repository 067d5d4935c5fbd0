#!/usr/bin/env bash
# Install skinapp for this user, no root needed: the program folder, a menu entry, an icon
# and a `skinapp` command. Everything installed is listed in <prefix>/install-manifest.txt,
# and `uninstall.sh` removes exactly that list (never the data: models, logs, jobs).
#
#   ./install.sh                 copy this folder to ~/.local/opt/skinapp and install there
#   ./install.sh --prefix DIR    copy it to DIR instead
#   ./install.sh --in-place      use this folder where it is (do not move it afterwards)
#
# Honours XDG_DATA_HOME (menu entry and icon under it, default ~/.local/share).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
prefix="$HOME/.local/opt/skinapp"
while (($#)); do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --in-place) prefix=$here; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
apps="$data_home/applications"
icons="$data_home/icons/hicolor/256x256/apps"
bin_dir="$HOME/.local/bin"
[ -x "$here/skinapp" ] || { echo "install.sh: run it from the unpacked skinapp folder" >&2; exit 1; }

copied=0
mkdir -p "$(dirname "$prefix")"
prefix=$(cd "$(dirname "$prefix")" && pwd -P)/$(basename "$prefix")
if [ "$prefix" != "$here" ]; then
  if [ -e "$prefix" ] && [ ! -f "$prefix/install-manifest.txt" ]; then
    echo "install.sh: $prefix exists and is not a skinapp install; choose --prefix" >&2; exit 1
  fi
  [ ! -f "$prefix/uninstall.sh" ] || "$prefix/uninstall.sh" --quiet
  echo "copying the program to $prefix ..."
  tmp="$prefix.installing.$$"
  rm -rf "$tmp"
  cp -a "$here" "$tmp"
  rm -f "$tmp/install-manifest.txt"
  mv "$tmp" "$prefix"
  copied=1
fi

manifest="$prefix/install-manifest.txt"
: > "$manifest"
record() { printf '%s\t%s\n' "$1" "$2" >> "$manifest"; }
[ "$copied" = 0 ] || record dir "$prefix"

mkdir -p "$apps" "$icons" "$bin_dir"
sed "s|@EXEC@|\"$prefix/skinapp\"|" "$prefix/skinapp.desktop" > "$apps/skinapp.desktop"
chmod 644 "$apps/skinapp.desktop"
record file "$apps/skinapp.desktop"
cp "$prefix/skinapp.png" "$icons/skinapp.png"
record file "$icons/skinapp.png"
if [ -e "$bin_dir/skinapp" ] && [ ! -L "$bin_dir/skinapp" ]; then
  echo "install.sh: $bin_dir/skinapp exists and is not ours; leaving it (run $prefix/skinapp)" >&2
else
  ln -sfn "$prefix/skinapp" "$bin_dir/skinapp"
  record link "$bin_dir/skinapp"
fi
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" 2>/dev/null || true

echo "skinapp installed in $prefix"
echo "  menu entry: $apps/skinapp.desktop"
echo "  command:    $bin_dir/skinapp (add $bin_dir to PATH if it is not there)"
echo "  uninstall:  $prefix/uninstall.sh"
echo "The first start trains the demo models (about a minute); data lives in ~/.local/share/skinapp."
