"""Formats of dates and times the admin shows, for Django's FORMAT_MODULE_PATH."""
