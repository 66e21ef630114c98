"""Dailies: reviewers' decisions on a version's shots, and the web application they make them in
(`previz review`); the next render follows the decisions."""
