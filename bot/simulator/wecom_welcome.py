"""WeCom group welcome templates: ``externalcontact/group_welcome_template/{add,edit,get,del}``
(docs/platform.md#group-welcome-templates,
[W:92366]).

* Content: ``text.content`` ≤ 3000 bytes (else 45002, as ``send_welcome_msg``'s text) plus at most **one**
  of ``image`` (``media_id`` or ``pic_url``) / ``link`` (``title`` ≤ 128 bytes, ``url``, ``desc`` ≤ 512
  bytes) / ``miniprogram`` (``title`` ≤ 64 bytes, ``pic_media_id``, ``appid``, ``page``) / ``file`` /
  ``video`` (``media_id``); not all empty. Media ids must be ones ``media/upload`` issued, unexpired and of
  the right type (40007, as for ``send_welcome_msg``). ``notify`` 0 or 1 (default 1). A bad field → 40058.
* The corp library holds ≤ 100 templates. Neither [W:92366] nor the global errcode table ([W:90313])
  names a code for the 101st (searched: API docs, SDK errcode tables, issue threads): we answer 40058
  "不合法的参数" with an errmsg naming the limit — not 45009, which is the frequency-limit code that
  clients (ours too) treat as "retry later", while a full library stays full until a template is deleted.
* An app may edit/delete only the templates it created; the docs name no errcode: we answer 48002
  "api forbidden" (global table: "API接口无权限调用"). An unknown ``template_id`` → 40058 (our choice).
  :func:`add_console_template` seeds a template made in the admin console (not the app's).
* ``edit`` replaces the template's content with the fields given (our choice; the docs do not say
  whether omitted fields are kept). ``get`` answers the content as stored.
* Applying a template to a group happens in the client (the group owner); there is no API for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.simulator.api import INVALID_PARAM, ApiError, ApiRequest, Route, need_str, opt_int
from bot.simulator.models import WelcomeTemplate
from bot.simulator.wecom_contacts import check_attachments, check_text
from bot.simulator.wecom_media import check_media_ids

if TYPE_CHECKING:
    from bot.simulator.state import SimState

MAX_TEMPLATES = 100
TEXT_MAX_BYTES = 3000
TYPES = ("image", "link", "miniprogram", "file", "video")
NOT_THE_APPS = 48002


def _content(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """The template content of a request body, validated (text and at most one attachment)."""
    text = check_text(body, TEXT_MAX_BYTES)
    kinds = [k for k in TYPES if body.get(k) is not None]
    if len(kinds) > 1:
        raise ApiError(INVALID_PARAM, f"only one of {', '.join(TYPES)} is allowed")
    if not text and not kinds:
        raise ApiError(INVALID_PARAM, "text, image, link, miniprogram, file and video can not all be empty")
    content: dict[str, Any] = {"text": {"content": text}} if text else {}
    if kinds:
        attachment = {"msgtype": kinds[0], kinds[0]: body[kinds[0]]}
        check_attachments({"attachments": [attachment]})
        check_media_ids(state, [attachment])
        content[kinds[0]] = dict(body[kinds[0]])
    return content


def _notify(body: dict[str, Any]) -> int:
    notify = opt_int(body, "notify", 1)
    if notify not in (0, 1):
        raise ApiError(INVALID_PARAM, "notify must be 0 or 1")
    return notify


def _own_template(state: SimState, body: dict[str, Any]) -> WelcomeTemplate:
    template = state.welcome_templates.get(need_str(body, "template_id"))
    if template is None:
        raise ApiError(INVALID_PARAM, "invalid template_id")
    if not template.created_by_api:
        raise ApiError(NOT_THE_APPS, "api forbidden: the template was not created by this app")
    return template


def add(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``group_welcome_template/add`` → ``template_id``; the 101st template → 40058 (see above)."""
    content, notify = _content(state, req.body), _notify(req.body)
    if len(state.welcome_templates) >= MAX_TEMPLATES:
        raise ApiError(INVALID_PARAM, f"group welcome template count exceeds {MAX_TEMPLATES}")
    template = WelcomeTemplate(state.new_id("msg", 27), content, notify, state.ts())
    state.welcome_templates[template.template_id] = template
    return {"template_id": template.template_id}


def edit(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``group_welcome_template/edit``: ``template_id`` + the same fields as ``add``."""
    template = _own_template(state, req.body)
    template.content, template.notify = _content(state, req.body), _notify(req.body)
    return {}


def get(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``group_welcome_template/get``: any template of the corp (the console's too)."""
    template = state.welcome_templates.get(need_str(req.body, "template_id"))
    if template is None:
        raise ApiError(INVALID_PARAM, "invalid template_id")
    return dict(template.content)


def delete(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``group_welcome_template/del``: only the app's own templates."""
    del state.welcome_templates[_own_template(state, req.body).template_id]
    return {}


def add_console_template(state: SimState, text: str) -> WelcomeTemplate:
    """Seed a template as if made in the admin console (the app can read it but not edit/delete it)."""
    template = WelcomeTemplate(state.new_id("msg", 27), {"text": {"content": text}}, 0, state.ts(), False)
    state.welcome_templates[template.template_id] = template
    return template


ROUTES = {
    "externalcontact/group_welcome_template/add": Route(add),
    "externalcontact/group_welcome_template/edit": Route(edit),
    "externalcontact/group_welcome_template/get": Route(get),
    "externalcontact/group_welcome_template/del": Route(delete),
}
