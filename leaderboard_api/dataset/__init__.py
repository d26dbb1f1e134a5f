"""What data is and where it comes from."""
