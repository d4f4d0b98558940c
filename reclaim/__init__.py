"""reclaim: gives back licences that people hold but do not use."""
