from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "imali.signing"
    label = "signing"

    def ready(self) -> None:
        # The demo book's lenders start with the OTP switches on (see demo_data.py).
        from imali.demo.generator import BOOK_EXTENSIONS

        from .demo_data import add_otp_setups

        if add_otp_setups not in BOOK_EXTENSIONS:
            BOOK_EXTENSIONS.append(add_otp_setups)
