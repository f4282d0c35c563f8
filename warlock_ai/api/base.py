"""What every view of the API shares: JSON in and out, the configured permission classes,
the one error shape, the queryset hook, and pages of 50."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from ..operations import runs_inline
from .errors import exception_handler
from .permissions import FORCE_RESUME_RUN, RESUME_RUN, permission_classes
from .scoping import narrowed
from .serializers import ErrorSerializer

__all__ = [
    "ERRORS",
    "Ordering",
    "Pages",
    "SubRoute",
    "WarlockView",
    "errors",
    "narrowed",
    "openapi",
    "resume_permissions",
    "runs_inline",
]


class WarlockSchema(AutoSchema):
    """drf-spectacular's schema of a view, with the request body and the answers its methods
    declare with :func:`openapi` (no project setting needed: ``@extend_schema`` on a method
    would want ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` set to drf-spectacular's)."""

    def _declared(self) -> dict[str, Any]:
        handler = getattr(self.view, self.method.lower(), None)
        return getattr(handler, "openapi", {})

    def get_request_serializer(self) -> Any:
        declared = self._declared()
        return declared["request"] if "request" in declared else super().get_request_serializer()

    def get_response_serializers(self) -> Any:
        declared = self._declared()
        if "responses" in declared:
            return declared["responses"]
        return super().get_response_serializers()


def openapi(**declared: Any) -> Callable[[Any], Any]:
    """Declare a view method's ``request`` body serializer and ``responses`` for the schema."""

    def mark(handler: Any) -> Any:
        handler.openapi = declared
        return handler

    return mark


class Ordering(OrderingFilter):
    """``?ordering=-saved_at``; a field that cannot be ordered by is a 400 naming the ones
    that can (DRF's own ignores it, and the list comes back in its default order)."""

    def remove_invalid_fields(self, queryset: Any, fields: Any, view: Any, request: Any) -> Any:
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        if len(valid) != len([f for f in fields if f]):
            allowed = ", ".join(view.ordering_fields)
            raise ValidationError({self.ordering_param: [f"order by one of: {allowed}"]})
        return valid


class Pages(PageNumberPagination):
    """``?page=2&page_size=100`` (at most 500 a page). A page size that is not a whole
    number from 1 to 500 is a 400 (DRF's own falls back to 50 without a word)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int:
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not given.isascii() or not given.isdigit() or not 1 <= int(given) <= 500:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"must be a whole number from 1 to 500, got {given!r}"
                    ]
                }
            )
        return int(given)


class WarlockView(GenericAPIView):
    """A view of the API. ``permissions`` names what each HTTP method needs (HEAD as GET),
    ``doing`` how a refusal names what was asked."""

    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    pagination_class = Pages
    metadata_class = None  # OPTIONS is not part of the API: 405
    schema = WarlockSchema()
    permissions: ClassVar[dict[str, tuple[str, ...]]] = {}
    doings: ClassVar[dict[str, str]] = {}

    #: Query parameters that may be repeated (``?status=failed&status=cancelled``).
    repeatable: ClassVar[frozenset[str]] = frozenset({"status"})

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        repeated = sorted(
            key
            for key, values in request.query_params.lists()
            if len(values) > 1 and key not in self.repeatable
        )
        if repeated:
            raise ValidationError({key: ["give this parameter once"] for key in repeated})

    def get_permissions(self) -> list[Any]:
        return [permission() for permission in permission_classes()]

    def get_exception_handler(self) -> Any:
        return exception_handler

    def required_permissions(self, request: Any) -> tuple[str, ...]:
        return self.permissions.get(_method(request), ())

    def doing(self, request: Any) -> str:
        return self.doings.get(_method(request), "this")

    def narrow(self, queryset: Any) -> Any:
        return narrowed(self.request, queryset)


class SubRoute:
    """A view of ``<thing>/<id>/<name>/``. Ids may hold slashes, so a method this view does
    not answer names the thing whose id ends in ``/<name>``: it goes to ``parent`` (the
    thing's own view) with that id."""

    #: (the id's URL keyword, the last segment, the methods answered here, the thing's view)
    sub_route: ClassVar[tuple[str, str, frozenset[str], Callable[[], Any]]]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        key, name, own, parent = self.sub_route
        if request.method not in own:
            kwargs[key] = f"{kwargs[key]}/{name}"
            return parent().as_view()(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


def resume_permissions(request: Any) -> tuple[str, ...]:
    """Resuming a run or a turn; with ``{"force": true}``, force-resuming it."""
    force = isinstance(request.data, dict) and request.data.get("force") is True
    return (FORCE_RESUME_RUN,) if force else (RESUME_RUN,)


def _method(request: Any) -> str:
    return "GET" if request.method == "HEAD" else str(request.method)


#: What each refusal looks like, for the schema.
ERRORS = {
    400: "The request or its body is not valid: ``fields`` names what is wrong.",
    401: "No credentials were given.",
    403: "The user lacks the permission this needs (the message names it).",
    404: "No such run, session or page (or the queryset hook hides it).",
    409: "Refused in the run's present state: a live lease, drift, a finished run, an "
    "existing run id, no background worker.",
    503: "The queue or the store cannot be reached; nothing changed.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    chosen = codes or tuple(ERRORS)
    return {code: OpenApiResponse(ErrorSerializer, description=ERRORS[code]) for code in chosen}
