//! TODO(owner): module event.
