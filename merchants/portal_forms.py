"""The portal's forms as pydantic models, and their validation errors in Chinese, field by field.

Pages parse a submitted form with `parse_form(Model, form)`: a model, or {field: message} to show
next to the fields with a 422. Every text field is stripped, bounded in length and refused if it
holds control characters; markup is kept as typed (the templates escape it when shown).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from merchants.onboarding import ApplicationData

M = TypeVar("M", bound=BaseModel)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LICENCE_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
PHONE_RE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")

FIELD_LABELS = {
    "business_name": "商户名称",
    "licence_no": "统一社会信用代码",
    "contact_name": "联系人",
    "contact_phone": "联系电话",
    "category": "经营类目",
    "username": "用户名",
    "display_name": "显示名称",
    "password": "密码",
    "password_confirm": "确认密码",
    "current_password": "当前密码",
    "reason": "原因",
}
# Messages for a value of the wrong shape, where "invalid" would not say what is wanted.
_PATTERN_MESSAGES = {
    "licence_no": "统一社会信用代码应为18位数字或大写字母",
    "contact_phone": "请填写11位手机号或带区号的固定电话",
}

Text2to60 = Annotated[str, Field(min_length=2, max_length=60)]
Text1to32 = Annotated[str, Field(min_length=1, max_length=32)]


class PortalForm(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL_RE.search(value):
            raise ValueError("不能包含控制字符")
        return value


class ApplicationForm(PortalForm):
    business_name: Text2to60
    licence_no: Annotated[str, Field(min_length=1, max_length=18)]
    contact_name: Annotated[str, Field(min_length=2, max_length=32)]
    contact_phone: Annotated[str, Field(min_length=1, max_length=20)]
    category: Text1to32  # a category code

    @field_validator("licence_no")
    @classmethod
    def _licence(cls, value: str) -> str:
        value = value.upper()
        if not LICENCE_RE.fullmatch(value):
            raise ValueError(_PATTERN_MESSAGES["licence_no"])
        return value

    @field_validator("contact_phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if not PHONE_RE.fullmatch(value):
            raise ValueError(_PATTERN_MESSAGES["contact_phone"])
        return value

    def data(self, category_id: int) -> ApplicationData:
        return ApplicationData(
            business_name=self.business_name,
            licence_no=self.licence_no,
            contact_name=self.contact_name,
            contact_phone=self.contact_phone,
            category_id=category_id,
        )


class NewPassword(PortalForm):
    # Not stripped by hand: str_strip_whitespace applies, and a password that differs from
    # what was typed only by edge spaces is a surprise either way. Lengths: merchants.passwords.
    password: Annotated[str, Field(min_length=1, max_length=128)]
    password_confirm: Annotated[str, Field(min_length=1, max_length=128)]

    def matching(self) -> bool:
        return self.password == self.password_confirm


class SignupForm(ApplicationForm, NewPassword):
    username: Text1to32
    display_name: Annotated[str, Field(max_length=32)] = ""


class LoginForm(PortalForm):
    username: Annotated[str, Field(max_length=64)] = ""
    password: Annotated[str, Field(max_length=256)] = ""
    next: Annotated[str, Field(max_length=512)] = ""


class PasswordChangeForm(NewPassword):
    current_password: Annotated[str, Field(min_length=1, max_length=128)]


class StaffForm(NewPassword):
    username: Text1to32
    display_name: Annotated[str, Field(max_length=32)] = ""


class SuspendForm(PortalForm):
    reason: Annotated[str, Field(min_length=2, max_length=200)]


def _message(field: str, error: Any) -> str:
    label = FIELD_LABELS.get(field, field)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and error.get("input") == ""):
        return f"请填写{label}"
    if kind == "string_too_long":
        return f"{label}不能超过{ctx.get('max_length')}个字符"
    if kind == "string_too_short":
        return f"{label}至少{ctx.get('min_length')}个字符"
    if kind == "value_error":
        return f"{label}：{str(error['msg']).removeprefix('Value error, ')}"
    return f"{label}格式不正确"


def form_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(field, _message(field, error))
    return errors


def parse_form(model: type[M], form: Mapping[str, Any]) -> M | dict[str, str]:
    try:
        return model.model_validate(dict(form))
    except ValidationError as exc:
        return form_errors(exc)
