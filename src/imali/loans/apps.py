from django.apps import AppConfig


class LoansConfig(AppConfig):
    name = "imali.loans"
    label = "loans"

    def ready(self) -> None:
        # Generated books (load_demo, generate_book) get loans in every state for their clients.
        from imali.demo.generator import BOOK_EXTENSIONS

        from .demo_data import add_loans

        if add_loans not in BOOK_EXTENSIONS:
            BOOK_EXTENSIONS.append(add_loans)
