from django.apps import AppConfig


class MarketingConfig(AppConfig):
    name = "imali.marketing"
    label = "marketing"
    verbose_name = "Client marketing"

    def ready(self) -> None:
        # Generated books (load_demo, generate_book) fill the client fields client marketing added.
        from imali.demo.generator import BOOK_EXTENSIONS

        from .demo_data import add_marketing_fields

        if add_marketing_fields not in BOOK_EXTENSIONS:
            BOOK_EXTENSIONS.append(add_marketing_fields)
