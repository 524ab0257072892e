# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which values of the connection options are credentials.

Ansible masks every value of a ``no_log`` option wherever it appears in a module's output. For
``kubeconfig`` that is too much: its path, and the cluster names, server URLs and plain words
such as ``v1`` of an inline kubeconfig, would turn into ``********`` inside every message. The
module keeps masked only what ``kubeconfig_secrets`` returns (everything under ``users[].user``:
tokens, passwords, client keys and certificates, auth-provider and exec settings) and every
value of the other ``no_log`` options; the rest of the kubeconfig is shown as given.
"""

NO_LOG_OPTIONS = ("api_key", "password")
NO_LOG_PROXY_HEADERS = ("proxy_basic_auth", "basic_auth")


def leaves(value):
    """Every scalar inside ``value`` as Ansible's no_log collection sees it (as text)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from leaves(item)
    elif value is not None and value != "":
        yield str(value)


def kubeconfig_secrets(kubeconfig):
    """The credential values of an inline kubeconfig (a mapping); text is all secret when it
    spans lines (kubeconfig content given as text), none when it is one line (a path)."""
    if isinstance(kubeconfig, str):
        return {kubeconfig} if "\n" in kubeconfig.strip() else set()
    if not isinstance(kubeconfig, dict):
        return set(leaves(kubeconfig))
    found = set()
    for user in kubeconfig.get("users") or []:
        if isinstance(user, dict):
            found.update(leaves(user.get("user")))
        else:
            found.update(leaves(user))
    return found


def option_secrets(params):
    """The values of the other no_log connection options in ``params``."""
    found = {params.get(name) for name in NO_LOG_OPTIONS} - {None, ""}
    headers = params.get("proxy_headers") or {}
    found.update(headers.get(name) for name in NO_LOG_PROXY_HEADERS if headers.get(name))
    return found


def revealable(params):
    """The no_log values that came from ``kubeconfig`` and are not credentials."""
    kubeconfig = params.get("kubeconfig")
    if kubeconfig is None:
        return set()
    keep = kubeconfig_secrets(kubeconfig) | option_secrets(params)
    return set(leaves(kubeconfig)) - keep
