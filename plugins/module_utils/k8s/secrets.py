# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which values of the connection options are credentials.

Ansible masks every value of a ``no_log`` option wherever it appears in a module's output. For
``kubeconfig`` that is too much: its path, and the cluster names, server URLs and plain words
such as ``v1`` of an inline kubeconfig, would turn into ``********`` inside every message. The
module keeps masked only what ``kubeconfig_secrets`` returns (everything under ``users[].user``:
tokens, passwords, client keys and certificates, auth-provider and exec settings) and every
value of the other ``no_log`` options; the rest of the kubeconfig is shown as given.

Kubeconfig *content* given as text (several lines, or one line holding a mapping such as JSON
or YAML flow style) is all secret: it is not a path, and the module refuses it without showing
it. A password inside a URL (``https://user:secret@proxy:3128``) is a credential wherever it
appears: in the kubeconfig (``proxy-url``, ``server``) and in the ``host`` and ``proxy`` options.
"""

from urllib.parse import urlsplit

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


def is_kubeconfig_text(value):
    """True for kubeconfig content given as text rather than a path: several lines, or one line
    that opens a mapping or a list (JSON, YAML flow style)."""
    text = value.strip()
    return "\n" in text or text.startswith(("{", "["))


def url_passwords(values):
    """The passwords of the URLs among ``values`` (``scheme://user:password@host``)."""
    found = set()
    for value in values:
        if "://" not in value or "@" not in value:
            continue
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            continue
        if password:
            found.add(password)
    return found


def kubeconfig_secrets(kubeconfig):
    """The credential values of an inline kubeconfig (a mapping); text is all secret when it is
    content (see :func:`is_kubeconfig_text`), none when it is a path."""
    if isinstance(kubeconfig, str):
        return {kubeconfig} if is_kubeconfig_text(kubeconfig) else set()
    if not isinstance(kubeconfig, dict):
        return set(leaves(kubeconfig))
    found = set()
    for user in kubeconfig.get("users") or []:
        if isinstance(user, dict):
            found.update(leaves(user.get("user")))
        else:
            found.update(leaves(user))
    found.update(url_passwords(leaves(kubeconfig)))
    return found


def option_secrets(params):
    """The values of the other no_log connection options in ``params``."""
    found = {params.get(name) for name in NO_LOG_OPTIONS} - {None, ""}
    headers = params.get("proxy_headers") or {}
    found.update(headers.get(name) for name in NO_LOG_PROXY_HEADERS if headers.get(name))
    return found


def connection_url_secrets(params):
    """Passwords inside the URLs of the options that are not no_log (``host``, ``proxy``) and of
    the kubeconfig: the module adds them to the masked values."""
    values = [params.get(name) for name in ("host", "proxy") if isinstance(params.get(name), str)]
    kubeconfig = params.get("kubeconfig")
    if isinstance(kubeconfig, (dict, list)):
        values.extend(leaves(kubeconfig))
    return url_passwords(values)


def revealable(params):
    """The no_log values that came from ``kubeconfig`` and are not credentials."""
    kubeconfig = params.get("kubeconfig")
    if kubeconfig is None:
        return set()
    keep = kubeconfig_secrets(kubeconfig) | option_secrets(params)
    return set(leaves(kubeconfig)) - keep
