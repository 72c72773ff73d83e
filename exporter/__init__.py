"""tuneserve.exporter"""
