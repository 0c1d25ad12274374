"""The studio app: creative work (projects, generations, images), its engine, its pages and its public API."""
