"""The bottom layer's data side: the one reader stack (:mod:`.readers`), labeled datasets and
splits (:mod:`.datasets`), aclImdb archives (:mod:`.archives`), Keras' ``imdb.npz``
(:mod:`.imdb_npz`), the dataset kinds of sweep configs (:mod:`.kinds`) and the shipped sample
(:mod:`.sample`). Imports nothing of critic's above it; TF-free and Ray-free."""
