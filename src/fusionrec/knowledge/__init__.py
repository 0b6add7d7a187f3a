"""Knowledge sources: item text read by a language model (text/) and knowledge graphs (kg/)."""
