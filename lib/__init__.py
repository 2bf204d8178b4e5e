"""vistarank: product images to recommendations, on Spark, Delta and TensorFlow."""

__version__ = "0.2.0"
