"""Serializers of the token sign-in."""

from __future__ import annotations

from rest_framework import serializers


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
    challenge = serializers.CharField(
        max_length=64, required=False, allow_blank=True,
        help_text="Second step, when the entity asks for a sign-in code: the challenge from the first answer.",
    )
    code = serializers.CharField(
        max_length=12, required=False, allow_blank=True, trim_whitespace=True,
        help_text="Second step: the code sent to the user's cellphone.",
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as the header `Authorization: Token <token>`.")


class TokenCodeSentSerializer(serializers.Serializer):
    otp_required = serializers.BooleanField(help_text="Always true: send the code to finish signing in.")
    challenge = serializers.CharField(help_text="Send back with the code, username and password.")
    detail = serializers.CharField()
