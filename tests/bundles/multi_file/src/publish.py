# Databricks notebook source
print("publish")
