"""The email channel: the same `{^Field^}` templates as SMS, one email credit per recipient,
attachments up to 7 MB per email, sent through Django's email backends (SMTP in production,
console or file when embedded)."""
