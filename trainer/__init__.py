"""tuneserve.trainer"""
