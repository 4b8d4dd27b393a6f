//! TODO(owner): module codec.
