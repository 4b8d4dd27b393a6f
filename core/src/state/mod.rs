//! TODO(owner): module state.
