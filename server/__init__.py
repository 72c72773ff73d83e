"""tuneserve.server"""
