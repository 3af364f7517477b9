"""inspector.model"""
