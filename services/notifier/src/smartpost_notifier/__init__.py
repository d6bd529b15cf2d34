"""SmartPost notifier: tells portal recipients by e-mail that new documents are waiting (immediate + daily digest)."""
