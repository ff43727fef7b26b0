"""Sign in and sign out. Every attempt is audited with the caller's address; a username with too
many recent failures is refused, even with the right password, until the lock-out window ends."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render, resolve_url
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.signing.services import login_otp_required
from imali.tenancy.services import login_is_locked, login_record

from ..access import client_ip
from ..forms import LoginForm, form_status
from .signing import login_otp_begin


def _next_url(request) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_next_url(request))
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"].strip()
        ip = client_ip(request)
        if login_is_locked(username=username):
            login_record(username=username, user=None, succeeded=False, ip_address=ip, locked=True)
            form.add_error(None, f"Too many failed sign-ins for this username. Try again in "
                                 f"{settings.IMALI_LOGIN_LOCKOUT_MINUTES} minutes, or ask your administrator.")
        else:
            user = authenticate(request, username=username, password=form.cleaned_data["password"])
            if user is not None and login_otp_required(user=user):
                # User OTP: the password is half a sign-in; the code to the user's own cellphone
                # finishes it (web:signing_login_otp), and that is when the sign-in is recorded.
                try:
                    return login_otp_begin(request, user, _next_url(request))
                except ValidationError as exc:
                    form.add_error(None, exc.messages)
                    return render(request, "web/login.html", {"form": form, "next": request.GET.get("next", "")}, status=form_status(form))
            if user is not None:
                login(request, user)
                login_record(username=username, user=user, succeeded=True, ip_address=ip)
                return redirect(_next_url(request))
            login_record(username=username, user=None, succeeded=False, ip_address=ip)
            form.add_error(None, "Username or password is wrong.")
    return render(request, "web/login.html", {"form": form, "next": request.GET.get("next", "")}, status=form_status(form))


@require_POST
def logout_view(request):
    user = request.user
    if user.is_authenticated:
        audit_record(action=AuditAction.LOGOUT, actor=user, entity=user.entity, target=user, subject=user.username.lower(),
                     ip_address=client_ip(request))
        logout(request)
        messages.info(request, "You are signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


urlpatterns = [
    path("login/", login_view, name="login"),
    path("logout/", logout_view, name="logout"),
]
