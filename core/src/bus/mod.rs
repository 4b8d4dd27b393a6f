//! TODO(owner): module bus.
