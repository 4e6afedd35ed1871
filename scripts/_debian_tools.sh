# Sourced by scripts/test: the Debian tools some tests need (tests/test_compose.py runs `haproxy -c`
# and `promtool`; tests/test_console.py drives Debian's `chromium`). Installed with apt-get when
# missing and we are root; when they cannot be installed the tests that need them fail and say how
# to install them (never skip).
_missing=()
command -v haproxy >/dev/null 2>&1 || _missing+=(haproxy)
command -v promtool >/dev/null 2>&1 || _missing+=(prometheus)
{ command -v chromium >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium ]; } || _missing+=(chromium)
if [ "${#_missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== apt-get install ${_missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -qq -o DPkg::Lock::Timeout=300 update \
            && apt-get -qq -y -o DPkg::Lock::Timeout=300 install --no-install-recommends "${_missing[@]}" >/dev/null \
            || echo "apt-get could not install ${_missing[*]}: the tests that need them will fail" >&2
    else
        echo "not root: cannot install ${_missing[*]} (Debian); the tests that need them will fail" >&2
    fi
fi
unset _missing
