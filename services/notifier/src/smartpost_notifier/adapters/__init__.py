"""I/O of the notifier: its database (mail outbox, documents, master data) and the SMTP client."""
