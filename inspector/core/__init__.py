"""inspector.core"""
