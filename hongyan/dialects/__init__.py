"""Front doors: the native REST API (``rest``) and the vendor dialects, one module each."""
