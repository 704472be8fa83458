"""Layer 3, training: losses for imbalanced multi-label data and the metrics that judge them.

Each loss and metric has a functional form and a class sharing its private
helpers; metrics are compared against scikit-learn's in the tests.
"""
