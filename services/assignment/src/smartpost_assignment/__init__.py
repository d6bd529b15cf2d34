"""SmartPost assignment service: which contact (and property/unit) gets which split letter."""
