//! A faithful local emulator of the Dastra REST API.
